// {{name}}: answers every request under the route `/...` (componentize-js, the
// StarlingMonkey engine: the web's fetch-event API).
addEventListener('fetch', (event) => event.respondWith(handle(event.request)));

async function handle(request) {
  const { pathname } = new URL(request.url);
  if (pathname === '/') {
    return new Response('Hello from {{name}}!\n', {
      headers: { 'content-type': 'text/plain; charset=utf-8' },
    });
  }
  return new Response('not found\n', { status: 404 });
}
