"""Hard-codes the answers for the chapter's users, read off the heatmap."""
# exercise: 00-nearest
# rejected: makes up users
return {
    "user-tokyo": "pop-tokyo",
    "user-berlin": "pop-frankfurt",
    "user-london": "pop-frankfurt",
    "user-singapore": "pop-singapore",
    "user-newyork": "pop-virginia",
    "user-saopaulo": "pop-saopaulo",
    "user-vienna": "pop-frankfurt",
    "user-zurich": "pop-frankfurt",
}.get(user)
