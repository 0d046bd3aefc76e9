"""Trusts any JSON object on a telemetry topic: missing fields get defaults, types unchecked."""
# exercise: 09-local
# rejected: malformed payload
# instead of: try:
# instead of: r = json.loads(payload)
# instead of: sensor, seq = r["sensor"], r["seq"]
# instead of: temp, vib = float(r["temp_c"]), float(r["vib_mm_s"])
# instead of: except (ValueError, KeyError, TypeError):
# instead of: self.log(topic, "not a reading")
# instead of: return []
# instead of: if sensor != parts[1] or type(seq) is not int or seq < 0:
# instead of: self.log(topic, "not a reading")
# instead of: return []
try:
    r = json.loads(payload)
except ValueError:
    self.log(topic, "not JSON")
    return []
sensor, seq = parts[1], r.get("seq", 0)
temp, vib = r.get("temp_c", 60.0), r.get("vib_mm_s", 0.0)
