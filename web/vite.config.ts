// The page's build: plain Vite (its own JSX transform; no plugin needed without hot reload).
// Deterministic for a given package-lock.json: scripts/build_web.py --check rebuilds and compares.
import { defineConfig } from "vite";

// `npm run dev` serves the page with hot reload and sends the calls to a gateway from `make run`.
const gateway = process.env.ITSM_WEB_URL ?? "http://127.0.0.1:8080";

export default defineConfig({
  // Relative asset URLs: the page also works behind a reverse proxy under a path prefix.
  base: "./",
  oxc: { jsx: { runtime: "automatic" } },
  build: {
    outDir: "built",
    emptyOutDir: true,
    // Everything is a file served by the gateway: no data: URLs for the CSP to allow.
    assetsInlineLimit: 0,
    // One chunk, loaded by a module script: no preload polyfill code needed.
    modulePreload: { polyfill: false },
    sourcemap: false,
    reportCompressedSize: false,
  },
  server: {
    proxy: {
      "/itsm.v1.TicketService": gateway,
      "/itsm.v1.TemplateService": gateway,
    },
  },
});
