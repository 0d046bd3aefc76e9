// Every call the app makes to the notes API is in this module. The Service Worker
// stands between it and the network (sw.js): a write it could not send, it keeps
// and answers 202 with the header X-Queued.

export async function listNotes() {
  const response = await fetch('/notes');
  if (!response.ok) throw new Error(`GET /notes: ${response.status}`);
  return (await response.json()).notes;
}

// "synced" when the server took the note, "queued" when the Service Worker keeps it
// for later; throws when neither did (no Service Worker yet, and no network).
// The Idempotency-Key travels with the request, also when it is replayed, so the
// server applies the write once however often it arrives.
export async function saveNote(note) {
  const response = await fetch('/notes', {
    method: 'POST',
    headers: {'Content-Type': 'application/json', 'Idempotency-Key': `"${note.key}"`},
    body: JSON.stringify({id: note.id, text: note.text}),
  });
  if (response.status === 202 && response.headers.has('X-Queued')) return 'queued';
  if (!response.ok) throw new Error(`POST /notes: ${response.status}`);
  return 'synced';
}
