// npm test's last word: the tests passed and failed over every jest run, and the name of each that failed,
// so that a long log's one failure is found at its end. A run whose results file is missing counts as failed.
import { readFileSync } from 'node:fs'
import { basename } from 'node:path'

let passed = 0
let failed = 0
const failures = []
for (const file of process.argv.slice(2)) {
  let results
  try {
    results = JSON.parse(readFileSync(file, 'utf8'))
  } catch {
    failed += 1
    failures.push(`${basename(file)}: no results (the run did not finish)`)
    continue
  }
  passed += results.numPassedTests
  failed += results.numFailedTests
  for (const suite of results.testResults ?? []) {
    const where = suite.name.replace(/^.*__tests__\//, '__tests__/')
    for (const test of suite.assertionResults ?? []) {
      if (test.status === 'failed') failures.push(`${where}: ${test.fullName}`)
    }
    if (suite.status === 'failed' && !(suite.assertionResults ?? []).some((t) => t.status === 'failed')) {
      failures.push(`${where}: ${suite.message.split('\n').find((l) => l.trim()) ?? 'failed to run'}`)
    }
  }
}
console.log(`jest: ${passed} passed, ${failed} failed`)
for (const f of failures) console.log(`  failed: ${f}`)
