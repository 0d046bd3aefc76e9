"""Sends the whole desired state as the delta, also the keys the device already reports."""
# exercise: 09-shadow
# rejected: delta holds the desired keys whose value differs
# instead of: delta = {k: v for k, v in state["desired"].items() if state["reported"].get(k) != v}
delta = dict(state["desired"])
