// The notes on this device, in IndexedDB. The app reads and writes here first, so it
// works with no network at all. A note is {id, key, text, created, state}, where
// state is "synced" (the server has it), "queued" (the Service Worker holds the
// request until the network is back) or "local" (no one has sent it yet).
const DB_NAME = 'notes';
const STORE = 'notes';

const db = new Promise((resolve, reject) => {
  const request = indexedDB.open(DB_NAME, 1);
  request.onupgradeneeded = () => request.result.createObjectStore(STORE, {keyPath: 'id'});
  request.onsuccess = () => resolve(request.result);
  request.onerror = () => reject(request.error);
});

// One transaction: `work` gets the object store; resolves once the transaction commits.
async function transaction(mode, work) {
  const tx = (await db).transaction(STORE, mode);
  const request = work(tx.objectStore(STORE));
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve(request.result);
    tx.onerror = tx.onabort = () => reject(tx.error);
  });
}

export const allNotes = () => transaction('readonly', (notes) => notes.getAll());
export const putNote = (note) => transaction('readwrite', (notes) => notes.put(note));
