// npm run demo: a real deploy on the throwaway local Docker host. Sets up app "demo" from nothing with v1
// (3 replicas behind nginx on 127.0.0.1:8080), then rolls v2 out while a client sends GET, POST and slow
// requests through nginx, and prints what the client saw. Exits non-zero if any request failed.
import { startLoad } from './lib/load.mjs'
import { baseInputs, resetApp, runAction, testHost } from './lib/action.mjs'

const APP = 'demo'
const PORT = 8080
const inputs = { ...baseInputs(testHost(), APP, PORT), replicas: '3', 'drain-seconds': '2' }
const image = (tag) => `nginx-rollout-test/app:${tag}`
const stepLines = (run) => run.stdout.split('\n').filter((l) => /^\[\d+\/\d+\]|^result:|^::error::/.test(l))

resetApp(APP)
console.log(`1. First deploy on a bare host: ${image('v1')}, 3 replicas, nginx on 127.0.0.1:${PORT}`)
const first = await runAction({ ...inputs, image: image('v1') }, { debug: false })
stepLines(first).forEach((l) => console.log(`   ${l}`))
if (first.outputs.result !== 'deployed') process.exit(1)

console.log(`\n2. Rolling deploy of ${image('v2')} under live traffic (GET, POST and 0.4 s requests through nginx)`)
const load = startLoad({ port: PORT, maxSeconds: 120 })
await new Promise((r) => setTimeout(r, 1000))
const second = await runAction({ ...inputs, image: image('v2') }, { debug: false })
await new Promise((r) => setTimeout(r, 1000))
const report = await load.stop()
stepLines(second).forEach((l) => console.log(`   ${l}`))

console.log('\n   requests  answered  failed  served by v1  served by v2  deploy time')
console.log(
  `   ${String(report.sent).padStart(8)}  ${String(report.answered).padStart(8)}  ${String(report.failed).padStart(6)}  ` +
    `${String(report.byVersion.v1 ?? 0).padStart(12)}  ${String(report.byVersion.v2 ?? 0).padStart(12)}  ${second.outputs['duration-seconds']} s`,
)
if (report.failed) console.log(`   failures: ${report.sampleErrors.join('; ')}`)
console.log(
  `\nnginx now serves ${report.lastVersion} on http://127.0.0.1:${PORT}/ (try: curl 127.0.0.1:${PORT}/). Clean up: bash scripts/testhost/down.sh`,
)
process.exit(second.outputs.result === 'deployed' && report.failed === 0 ? 0 : 1)
