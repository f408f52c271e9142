// Starts Swagger UI on this server's OpenAPI document, with the plugin that streams.
// Every URL is relative to this page (`<prefix>/docs/`), so the docs work under any prefix.
"use strict";

/** Where the API is: the folder above this page's, whatever prefix a proxy mounts it at. */
const api = new URL("..", location.href);

window.ui = SwaggerUIBundle({
  url: new URL("openapi.json", api).href,
  dom_id: "#swagger-ui",
  plugins: [window.chunkstreamStreaming],
  // Straight to the parameters and Execute: this page is for trying the streams.
  tryItOutEnabled: true,
  deepLinking: true,
  // Never ask an outside validator about the document (its badge would load from it).
  validatorUrl: null,
  // The document names no server, so Swagger UI sends a request for `/stream` to the root
  // of this origin; under a prefix (`/demo/docs/`) it belongs under the prefix.
  requestInterceptor: (request) => {
    const url = new URL(request.url, location.href);
    if (url.origin === api.origin && !url.pathname.startsWith(api.pathname)) {
      request.url = new URL(`.${url.pathname}${url.search}`, api).href;
    }
    return request;
  },
});
