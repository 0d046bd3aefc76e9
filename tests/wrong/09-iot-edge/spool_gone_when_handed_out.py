"""Marks readings sent when it hands them out, before the cloud acknowledged them."""
# exercise: 09-spool
# rejected: next_batch() handed out
# instead of: return batch[:limit]
batch = batch[:limit]
self.sent(batch)
return batch
