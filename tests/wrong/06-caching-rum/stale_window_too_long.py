"""Serves stale for a minute while revalidating: readers never wait, but after a quiet
spell the first reader gets a page far older than the promised update time."""
# exercise: 06-policy
# rejected: stale-while-revalidate window
# instead of: f"stale-while-revalidate={update_s - fresh}",
"stale-while-revalidate=60",
