"""Every read at the primary: always consistent, and every read pays the trip to
Ashburn, even when the replica next door had caught up long ago."""
# exercise: 07-session
# rejected: reads went to the primary while the replica had caught up
# instead of: on="replica" if fresh else "primary",
on="primary",
