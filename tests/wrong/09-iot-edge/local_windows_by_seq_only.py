"""One open window for all sensors: a reading of any sensor in a later window closes it."""
# exercise: 09-local
# rejected: windows are per sensor
# instead of: now = self.open.get(sensor)
now = self.open.get("all")
# instead of: out.append(self.close(sensor))  # a reading of a later window closes this one
out.append(self.close("all"))
# instead of: now = self.open[sensor] = {
now = self.open["all"] = {
