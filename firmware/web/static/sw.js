// The phone page's service worker: only so that "notify me when done" can show a notification
// where the browser requires one (Android's Chrome has no `new Notification()` for pages). It
// caches nothing and intercepts no request.
"use strict";

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));
self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const url = event.notification.data && event.notification.data.url;
  event.waitUntil(self.clients.matchAll({ type: "window" }).then((windows) => {
    const open = windows.find((w) => url && w.url.startsWith(url));
    if (open) return open.focus();
    return url ? self.clients.openWindow(url) : undefined;
  }));
});
