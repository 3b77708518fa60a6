// What the benchmark reads of a run's job summary (src/summary.ts writes it): step durations, the reloads,
// when traffic switched, when the run ended, its own work and its cost. Figures and their unit are joined by
// a no-break space there, which \s matches; summary.test.ts renders a summary and reads it back with this.

/** What the run's summary says: step durations, the route (reload) steps, when traffic switched and the run ended. */
export function readSummary(summary) {
  // Steps table rows: | n | step | [host |] duration | outcome |; an undo's rows read 'rollback: ...'.
  const steps = [...summary.matchAll(/^\| \d+ \| (?!rollback: )(.+?) \| (?:[^|]* \| )?([\d.]+)\ss \| ok/gm)].map(
    ([, desc, s]) => ({ desc, seconds: Number(s) }),
  )
  const routes = steps.filter((s) => /^route /.test(s.desc))
  const switched = /all traffic on the new version after\*\* ([\d.]+)\ss/.exec(summary)?.[1]
  const ended = /run ended after\*\* ([\d.]+)\ss/.exec(summary)?.[1]
  const stats = /<sub>(\d+) SSH connections?, (\d+) remote commands/.exec(summary)
  // "the run's own work: node start 0.15 s, connect 0.06 s, lock and read 0.25 s, records and unlock 0.03 s"
  const own = /the run's own work: ([^<]*)/.exec(summary)?.[1] ?? ''
  const phases = Object.fromEntries(
    [...own.matchAll(/([a-z ]+?) ([\d.]+)\ss/g)].map(([, name, s]) => [name.trim(), Number(s)]),
  )
  return {
    phases,
    stepSeconds: steps.reduce((a, s) => a + s.seconds, 0),
    routeSeconds: routes.map((s) => s.seconds),
    // Every route is one reload, and so is the step that turns nginx's record of requests on.
    reloads: routes.length + steps.filter((s) => /^start nginx's record/.test(s.desc)).length,
    switchedSeconds: switched === undefined ? undefined : Number(switched),
    endedSeconds: ended === undefined ? undefined : Number(ended),
    sshConnections: Number(stats?.[1] ?? 0),
    remoteCommands: Number(stats?.[2] ?? 0),
  }
}
