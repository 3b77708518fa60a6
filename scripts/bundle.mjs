// Bundles src/index.ts into one ESM file, dist/index.js, that runs on node20 and node24.
// ssh2 loads its optional native addons and uses require/__dirname at load time: keep the addons out
// and define those names for the ESM bundle.
import { build } from 'esbuild'

await build({
  entryPoints: ['src/index.ts'],
  outfile: process.env.BUNDLE_OUTFILE ?? 'dist/index.js',
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  external: ['*.node', 'cpu-features'],
  legalComments: 'none',
  logLevel: 'warning',
  banner: {
    js: [
      "import { createRequire as __nrCreateRequire } from 'node:module';",
      "import { fileURLToPath as __nrFileURLToPath } from 'node:url';",
      "import { dirname as __nrDirname } from 'node:path';",
      'const require = __nrCreateRequire(import.meta.url);',
      'const __filename = __nrFileURLToPath(import.meta.url);',
      'const __dirname = __nrDirname(__filename);',
    ].join('\n'),
  },
})
