"""Sends a summary only when a later window closes it: flush() forgets the partial last windows."""
# exercise: 09-local
# rejected: the last, partial window of a sensor comes out at flush()
# instead of: return [self.close(sensor) for sensor in list(self.open)]
return []
