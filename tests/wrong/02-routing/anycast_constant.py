"""Hard-codes the answer for Tokyo, for every user and failure."""

# exercise: 02-anycast
# rejected: one of ['pop-tokyo']
return "pop-singapore"
