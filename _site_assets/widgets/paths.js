// Loaded after require.js and before embed-amd.js. The widget manager derives its public path
// (where its Font Awesome files live) from its require.js module URL, which by default sits next to
// the page; point the module names at this folder so the fonts load from here.
(function () {
  var here = document.currentScript.src.replace(/\/[^/]*$/, "");
  require.config({paths: {"@jupyter-widgets/html-manager/dist": here, "@jupyter-widgets": here}});
})();
