// The Service Worker: the app's files from its caches, the notes API from the network
// when it answers, and writes kept in a queue while it does not.
// Workbox comes from the files vendored beside the app (vendor.sh), never from a CDN.
importScripts('vendor/workbox-7.4.1/workbox-sw.js');
workbox.setConfig({modulePathPrefix: 'vendor/workbox-7.4.1/', debug: false});
importScripts('precache-manifest.js'); // self.PRECACHE: the shell, a revision per file

const {precacheAndRoute} = workbox.precaching;
const {registerRoute} = workbox.routing;
const {CacheFirst, NetworkFirst} = workbox.strategies;
const {Queue} = workbox.backgroundSync;

self.skipWaiting(); // a new version takes over at once...
workbox.core.clientsClaim(); // ...and controls the pages already open

// 1. The app shell, fetched at install: the app opens offline from the first visit on.
precacheAndRoute(self.PRECACHE);

// 2. Images: from the cache once fetched, the network only the first time.
registerRoute(({request}) => request.destination === 'image', new CacheFirst({cacheName: 'assets'}));

// 3. Reading the notes: the network if it answers within 3 s, else the last copy cached.
registerRoute(
  ({url, request}) => url.pathname === '/notes' && request.method === 'GET',
  new NetworkFirst({cacheName: 'api', networkTimeoutSeconds: 3}),
);

// 4. Writing: send now, or keep the request in a queue (IndexedDB) and send it later.
async function tellPages(message) {
  for (const page of await self.clients.matchAll()) page.postMessage(message);
}

// A write waits at most this long for the network. A link that goes down under an
// open connection does not fail a request on it: the request just never finishes.
const WRITE_TIMEOUT_MS = 4000;

// Send the queue, oldest first (queue.replayRequests() does the same, with no timeout).
// A request that fails goes back to the head of the queue, and the error tells the
// browser to fire `sync` again later. One that timed out may still have arrived: its
// Idempotency-Key makes the server apply it once however often it comes.
async function replay(queue, how) {
  let entry;
  while ((entry = await queue.shiftRequest())) {
    try {
      await fetch(entry.request.clone(), {signal: AbortSignal.timeout(WRITE_TIMEOUT_MS)});
    } catch (error) {
      await queue.unshiftRequest(entry);
      throw error;
    }
  }
  await tellPages({type: 'synced', how});
}

const queue = new Queue('note-writes', {
  maxRetentionTime: 7 * 24 * 60, // minutes: a week
  onSync: ({queue}) => replay(queue, 'sync-event'), // the browser says: the network is back
});

async function sendOrQueue({request}) {
  try {
    if (!navigator.onLine) throw new Error('offline'); // the browser knows: do not wait
    return await fetch(request.clone(), {signal: AbortSignal.timeout(WRITE_TIMEOUT_MS)});
  } catch {
    await queue.pushRequest({request});
    await tellPages({type: 'queued', url: request.url});
    return new Response(JSON.stringify({queued: true}), {
      status: 202,
      headers: {'Content-Type': 'application/json', 'X-Queued': 'service-worker'},
    });
  }
}

for (const method of ['POST', 'PUT', 'DELETE']) {
  registerRoute(({url}) => url.pathname.startsWith('/notes'), sendOrQueue, method);
}

// Without Background Sync (Firefox, Safari) Workbox replays when the worker starts, and
// a page that saw the network come back asks for it (app.js).
self.addEventListener('message', (event) => {
  if (event.data?.type === 'replay') event.waitUntil(replay(queue, 'page-message'));
});
