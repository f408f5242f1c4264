import { defineConfig } from "vite";

// The server serves dist/ at "/" (server/app.py WEB_DIST, html_mode), so paths are absolute from root.
export default defineConfig({
  base: "/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2020",
    sourcemap: false,
    chunkSizeWarningLimit: 1200,
    rollupOptions: {
      output: {
        manualChunks: { maplibre: ["maplibre-gl"] },
      },
    },
  },
  server: {
    proxy: {
      "/v1": { target: "http://127.0.0.1:8000", ws: true },
    },
  },
});
