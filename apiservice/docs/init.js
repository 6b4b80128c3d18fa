// Starts Swagger UI on /openapi.yaml. It lives in its own file because the
// page's Content-Security-Policy allows no inline script.
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.yaml",
    dom_id: "#swagger-ui",
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    deepLinking: false,
    // Tokens stay in this tab's memory only.
    persistAuthorization: false,
    // No call to the public validator badge service.
    validatorUrl: null,
  });
});
