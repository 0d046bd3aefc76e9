"""Takes every topic that ends in "telemetry", and believes the payload's sensor name."""
# exercise: 09-local
# rejected: wrong topic
# instead of: if len(parts) != 3 or parts[0] != "factory" or parts[2] != "telemetry":
if parts[-1] != "telemetry":
# instead of: if sensor != parts[1] or type(seq) is not int or seq < 0:
if type(seq) is not int or seq < 0:
