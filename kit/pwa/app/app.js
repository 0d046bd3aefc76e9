// The notes app: a list, and a form that adds to it. Writes go to IndexedDB first
// (store.js), then to the server (api.js), through the Service Worker (sw.js).
import {allNotes, putNote} from './store.js';
import {listNotes, saveNote} from './api.js';

const list = document.querySelector('#notes');
const status = document.querySelector('#status');
const input = document.querySelector('#text');
window.appEvents = []; // what happened, in order: the Service Worker's messages, online, offline

async function render() {
  const notes = (await allNotes()).sort((a, b) => a.created - b.created);
  list.replaceChildren(
    ...notes.map((note) => {
      const item = document.createElement('li');
      item.textContent = note.text;
      item.dataset.id = note.id;
      item.dataset.state = note.state;
      return item;
    }),
  );
  const waiting = notes.filter((note) => note.state !== 'synced').length;
  status.textContent = `${navigator.onLine ? 'online' : 'offline'}; ${waiting} not synced`;
}

async function send(note) {
  try {
    note.state = await saveNote(note);
  } catch {
    note.state = 'local'; // sent again when the browser is back online, or at the next start
  }
  await putNote(note);
}

async function sendLocalNotes() {
  for (const note of await allNotes()) if (note.state === 'local') await send(note);
}

// What the server has (or, offline, what the Service Worker last cached of it):
// those notes are synced, and notes written on other devices join the list.
async function refresh() {
  let server;
  try {
    server = await listNotes();
  } catch {
    return; // no network and nothing cached yet: the local list is all there is
  }
  const local = new Map((await allNotes()).map((note) => [note.id, note]));
  for (const {id, text} of server) {
    const mine = local.get(id);
    if (mine?.state !== 'synced') {
      await putNote({...mine, id, text, created: mine?.created ?? 0, state: 'synced'});
    }
  }
  await render();
}

document.querySelector('#add').addEventListener('submit', async (event) => {
  event.preventDefault();
  const note = {
    id: crypto.randomUUID(),
    key: crypto.randomUUID(), // this write's idempotency key
    text: input.value,
    created: Date.now(),
    state: 'local',
  };
  input.value = '';
  await putNote(note); // on this device first: the note exists whatever the network does
  await render();
  await send(note);
  await render();
});

const askForReplay = () => navigator.serviceWorker.controller?.postMessage({type: 'replay'});

addEventListener('online', async () => {
  appEvents.push({type: 'online'});
  // Chromium tells the Service Worker itself (Background Sync's `sync` event). Firefox
  // and Safari have no Background Sync: there the page asks for the queue to be sent.
  if (!('SyncManager' in window)) askForReplay();
  await sendLocalNotes();
  await refresh();
});

// A link that stays up but carries nothing never comes back "online": the browser fires
// `sync` at once, the replay times out, and its next try is minutes away. So while a
// note waits in the queue, the page also asks now and then (and once at each start).
const RETRY_MS = 15000;
async function retryQueued() {
  if ((await allNotes()).some((note) => note.state === 'queued')) askForReplay();
}
setInterval(retryQueued, RETRY_MS);
addEventListener('offline', () => {
  appEvents.push({type: 'offline'});
  render();
});

// Interactive as soon as the local notes are on screen: no network needed.
await render();
document.body.dataset.ready = 'true';
window.readyAt = performance.now();

if ('serviceWorker' in navigator) {
  navigator.serviceWorker.addEventListener('message', (event) => {
    appEvents.push(event.data);
    if (event.data.type === 'synced') refresh();
  });
  await navigator.serviceWorker.register('sw.js');
}
await sendLocalNotes();
await retryQueued();
await refresh();
document.body.dataset.settled = 'true'; // startup's talk with the server is over
