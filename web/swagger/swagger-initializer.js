// Starts Swagger UI on the spec this gateway serves. A separate file because
// the page's Content-Security-Policy allows no inline script.
'use strict';

window.addEventListener('DOMContentLoaded', () => {
  // Relative to /docs/, so the page also works behind a path prefix; the
  // spec has no host, so "Try it out" calls this same origin.
  const specURL = new URL('../openapi/swagger.json', window.location.href).href;

  window.ui = window.SwaggerUIBundle({
    url: specURL,
    dom_id: '#swagger-ui',
    deepLinking: true,
    layout: 'BaseLayout',
    presets: [window.SwaggerUIBundle.presets.apis],
    // No call to the public validator badge service: nothing leaves this origin.
    validatorUrl: null,
    // Keep what was entered in "Authorize" across reloads of this tab.
    persistAuthorization: true,
    displayRequestDuration: true,
    docExpansion: 'list',
    filter: true,
    tryItOutEnabled: false,
    // BearerAuth is an API key in the Authorization header: accept a bare
    // token pasted from a login response and add the "Bearer " scheme.
    requestInterceptor: (req) => {
      const h = req.headers || {};
      const auth = h.Authorization || h.authorization;
      if (auth && !/^(Bearer|Basic)\s/i.test(auth)) {
        h.Authorization = 'Bearer ' + auth.trim();
        delete h.authorization;
      }
      return req;
    },
  });
});
