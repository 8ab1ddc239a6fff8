// Chaos, mail (issue 7, docs/reliability.md "Chaos"): a Postfix front-end running
// postfix/relay-main.cf routes a stream of messages through mailhostd's socketmap (LDAP
// directory on slapd, store on PostgreSQL) to two smtp-sink backends, while slapd is killed and
// restarted three times and PostgreSQL once (faults.ts). Recipients are accounts on both
// backends, aliases, extensions, the alias domain and the catch-all; about a third of the
// messages go to a key nobody asked for before, so outages meet both cold keys (TEMP: the sender
// or Postfix's queue must wait and retry) and warm ones (answered from the stale reserve).
// Afterwards every message must be in its recipient's backend sink exactly once, none in the
// other, none bounced (log, queue, DSNs) and none refused with a 5xx. The figures go to the
// test output; CHAOS_SIZE=full (npm run chaos) is the run docs/reliability.md reports.
//
// Cold keys meet the outage at RCPT: Postfix validates every recipient before it takes a
// message, so it refuses them with 451 and the sender retries. Mail already in Postfix's queue
// is asked about again by qmgr when it is routed, and is deferred there if mailhostd cannot
// answer. For that path the first SIZE.held messages, to keys no other message uses, are put on
// hold at arrival (header_checks HOLD) and released while slapd is down for the second time.
// By then the PostgreSQL restart has made mailhostd drop its cache (a change-bus resync), so
// their keys are cold: qmgr gets TEMP, defers them ("address resolver failure"), and Postfix's
// own retry delivers them once slapd is back.

import t from 'tap'
import { eachPeerSet } from '../harness/peer-set.js'
import { setTimeout as sleep } from 'node:timers/promises'
import { demoClusterConfig } from '../e2e/demo-table.js'
import { startMailhostd } from '../harness/mailhostd.js'
import { startedPeers } from '../harness/peers.js'
import { relayMainCf, startPostfix } from '../harness/postfix.js'
import { startPostgres } from '../harness/postgres.js'
import { startSlapd, slapdDirectory } from '../harness/slapd.js'
import { mustRun, run } from '../harness/process.js'
import { startSmtpSink, type Sink } from '../harness/smtp-sink.js'
import { catchAllRecipient, mailDirectory, prng, shuffle, type BackendId, type Recipient } from './directory.js'
import { describeOutages, runFaults, SCHEDULE } from './faults.js'
import { scrape, total } from './metrics.js'
import { chaosId, HOLD_HEADER, Sender, SENDER_DOMAIN, type Outgoing } from './sender.js'
import { SIZE } from './size.js'

eachPeerSet(t, async (t, set) => {
  const started = Date.now()
  /** mailhostd's warning and error lines by message, with counts (the level is a label or pino's number). */
  const warnings = () =>
    Object.entries(
      m
        .logs()
        .filter((l) => ['warn', 'error', 'fatal', 40, 50, 60].includes(l.level as string | number))
        .reduce<Record<string, number>>((acc, l) => {
          const k = `${String(l.msg)}${l.err ? ` (${JSON.stringify(l.err)})` : ''}`
          acc[k] = (acc[k] ?? 0) + 1
          return acc
        }, {}),
    )
      .map(([k, n]) => `${n} x ${k}`)
      .join('; ')
  /**
   * How often mailhostd dropped its whole cache. Its log announces a change-bus resync, then
   * reloads the registry from the store, then drops the cache and logs "registry loaded": only
   * that line says the drop happened (the store may be slow to answer right after its restart).
   */
  const cacheDrops = () => {
    let announced = false
    let done = 0
    for (const l of m.logs()) {
      if (/dropping the cache/.test(String(l.msg))) announced = true
      else if (announced && l.msg === 'registry loaded') {
        done++
        announced = false
      }
    }
    return done
  }
  const setUp = startedPeers(t)
  const directory = mailDirectory(SIZE.accounts, SIZE.aliases)
  const slapd = await setUp(startSlapd({ set, extraLdif: [directory.ldif] }))
  const pg = await setUp(startPostgres({ set }))
  const sinks: Record<BackendId, Sink> = { mx1: await setUp(startSmtpSink({ set })), mx2: await setUp(startSmtpSink({ set })) }
  // Postfix's relayhost: where mail without a route from mailhostd goes, instead of the harness's
  // dead port 9. A bounce to a sender would arrive here, and so do Postfix's own notices to the
  // postmaster; the test reads them instead of finding them stuck in the queue.
  const elsewhere = await setUp(startSmtpSink({ set }))
  const m = await startMailhostd({
    domains: demoClusterConfig().domains,
    backends: (['mx1', 'mx2'] as const).map((id) => ({
      id,
      mailHosts: [`${id}.example.org`],
      address: '127.0.0.1',
      route: 'smtp',
      ports: { smtp: sinks[id].port },
    })),
    directory: slapdDirectory(slapd, { timeout: '1s', connectTimeout: '500ms' }),
    store: { url: pg.url, connectTimeout: '1s' },
    // A TTL far shorter than each outage, so warm keys are served from the stale reserve (maxStale
    // stays at its default, 1 h); a short circuit so a restarted slapd is asked again soon.
    cache: { ttl: '2s', negativeTtl: '1s' },
    circuit: { openFor: '1s' },
    // Debug logs one line per lookup: tens of thousands kept in memory for nothing.
    log: { level: 'info' },
  })
  t.teardown(() => m.stop())
  const postfix = await setUp(
    startPostfix({ set,
      snippet: await relayMainCf({ socketmap: m.ports.socketmap }),
      // Deferred mail (address resolver failure while slapd is down) is retried within seconds,
      // not Postfix's minutes, so the run drains in bounded time.
      mainCf: {
        queue_run_delay: '1s',
        minimal_backoff_time: '1s',
        maximal_backoff_time: '4s',
        header_checks: 'regexp:$config_directory/hold.regexp',
        relayhost: `[127.0.0.1]:${elsewhere.port}`,
      },
      files: { 'hold.regexp': `/^${HOLD_HEADER}$/ HOLD held until the directory is down\n` },
    }),
  )
  t.comment(`size ${SIZE.name}: ${directory.recipients.length} directory keys (${SIZE.accounts} accounts, ${SIZE.aliases} aliases), set up in ${Date.now() - started} ms`)

  t.test(`${SIZE.messages} messages while slapd dies three times and PostgreSQL once`, async (t) => {
    const sender = new Sender(postfix.smtpPort, SIZE.smtpSessions)
    const random = prng(7)
    const fresh = shuffle([...directory.recipients], random)
    const used: Recipient[] = []
    const messages: Outgoing[] = []
    let firstSentInOutage = 0
    let coldInOutage = 0

    // About 30 % of messages go to a key never used before (3 % to a new catch-all address),
    // the rest to a key already asked about: warm in the cache, or stale during an outage.
    const choose = (id: number): { rcpt: Recipient; cold: boolean } => {
      const r = random()
      if (r < 0.03) return { rcpt: catchAllRecipient(id), cold: true }
      if ((r < 0.33 || used.length === 0) && fresh.length > 0) {
        const rcpt = fresh.pop()!
        used.push(rcpt)
        return { rcpt, cold: true }
      }
      return { rcpt: used[Math.floor(random() * used.length)]!, cold: false }
    }

    // The held messages' keys come off the fresh pool too, but never go into `used`: nothing else
    // asks about them, so they are cold once mailhostd drops its cache.
    const heldKeys = fresh.splice(-SIZE.held)
    const releaseAt = SCHEDULE.findIndex((f, i) => f.peer === 'slapd' && SCHEDULE.slice(0, i).some((g) => g.peer === 'postgres'))
    let released = 0
    const release = async (index: number) => {
      if (index !== releaseAt) return
      // The change bus reconnects up to 5 s after PostgreSQL is back, and only then is the cache
      // dropped; before that the held keys would still be answered stale.
      for (let i = 0; i < 150 && cacheDrops() === 0; i++) await sleep(100)
      const queued = await postfix.waitForQueue((q) => q.filter((e) => e.queue_name === 'hold').length === SIZE.held, 30_000)
      released = queued.filter((e) => e.queue_name === 'hold').length
      await mustRun('postsuper', ['-c', postfix.configDir, '-H', 'ALL'])
      await postfix.flush()
      // Keeps slapd down until qmgr has tried them: the path under test is TEMP in the queue.
      await postfix.waitForLog(/status=deferred \(address resolver failure\)/, 15_000).catch(() => undefined)
    }

    const t0 = Date.now()
    const faults = runFaults({ slapd, pg, streamMs: SIZE.streamMs, outageMs: SIZE.outageMs, t0, whileDown: release })
    for (let id = 0; id < SIZE.messages; id++) {
      const due = t0 + (id * SIZE.streamMs) / SIZE.messages
      if (due > Date.now()) await sleep(due - Date.now())
      const { rcpt, cold } = id < SIZE.held ? { rcpt: heldKeys[id]!, cold: true } : choose(id)
      const message = { id, rcpt, hold: id < SIZE.held }
      messages.push(message)
      sender.send(message)
      if (faults.during('slapd', Date.now() - t0)) {
        firstSentInOutage++
        if (cold) coldInOutage++
      }
    }
    const outages = await faults.done
    const streamEnded = Date.now()
    await sender.end(SIZE.drainMs)
    const acceptedAll = Date.now()

    // Wait for every accepted message to reach a sink: the deferred ones leave Postfix's queue at
    // its next retry (seconds), or at once when flushed.
    const accepted = new Set(messages.map((msg) => msg.id).filter((id) => !sender.stats.rejected.some((r) => r.id === id)))
    const arrived = async () => {
      const got = new Set<number>()
      for (const s of Object.values(sinks)) for (const msg of await s.messages()) got.add(chaosId(msg.content) ?? -1)
      return got
    }
    const deadline = Date.now() + SIZE.drainMs
    for (let got = await arrived(); [...accepted].some((id) => !got.has(id)) && Date.now() < deadline; got = await arrived()) {
      await postfix.flush()
      await sleep(1000)
    }
    await postfix.waitForQueue((q) => q.length === 0, 60_000).catch(() => undefined)
    const drained = Date.now()

    // Where each message went.
    const landed = new Map<number, { backend: BackendId | 'elsewhere'; rcptTo: string[] }[]>()
    let dsns = 0
    for (const [backend, s] of Object.entries(sinks) as [BackendId, Sink][]) {
      for (const msg of await s.messages()) {
        const id = chaosId(msg.content)
        if (id === undefined || msg.mailFrom === '') {
          dsns++
          continue
        }
        landed.set(id, [...(landed.get(id) ?? []), { backend, rcptTo: [...new Set(msg.rcptTo)] }])
      }
    }
    // What took the default route: no chaos message may be here, and no DSN. smtpd mails the
    // postmaster a transcript of a session in which cleanup could not queue a message (notify_classes
    // "resource": the alias expansion got TEMP for a cold key); those are notices, not bounces.
    const unrouted = await elsewhere.messages()
    for (const msg of unrouted) {
      const id = chaosId(msg.content)
      if (id !== undefined) landed.set(id, [...(landed.get(id) ?? []), { backend: 'elsewhere', rcptTo: msg.rcptTo }])
    }
    const notices = unrouted.filter((msg) => chaosId(msg.content) === undefined && msg.mailFrom !== '' && msg.rcptTo.every((r) => r.startsWith('postmaster@')))
    const unexpected = unrouted.filter((msg) => chaosId(msg.content) === undefined && !notices.includes(msg))
    const noticeSubjects = [...new Set(notices.map((msg) => /^Subject: (.*)$/m.exec(msg.content)?.[1] ?? '(no subject)'))]
    const misrouted = messages.filter((msg) => landed.get(msg.id)?.some((d) => d.backend !== msg.rcpt.backend))
    const missing = messages.filter((msg) => !landed.has(msg.id))
    const duplicated = messages.filter((msg) => (landed.get(msg.id)?.length ?? 0) > 1)
    const wrongRecipient = messages.filter((msg) => landed.get(msg.id)?.some((d) => d.rcptTo.join(',') !== msg.rcpt.finalAddress))
    const delivered = messages.filter((msg) => landed.get(msg.id)?.length === 1 && landed.get(msg.id)![0]!.backend === msg.rcpt.backend)

    // What Postfix did: queue ids that were deferred before they were sent, and any bounce.
    const log = await postfix.log()
    const idOfQueue = new Map([...log.matchAll(/ ([0-9A-F]{6,}): message-id=<chaos-(\d+)@/g)].map((x) => [x[1]!, Number(x[2])]))
    const deferredInQueue = new Set([...log.matchAll(/ ([0-9A-F]{6,}): to=<[^>]*>.* status=deferred/g)].map((x) => idOfQueue.get(x[1]!) ?? -1))
    const resolverFailures = [...log.matchAll(/status=deferred \(address resolver failure\)/g)].length
    const bounced = [...log.matchAll(/status=(bounced|expired)/g)].length
    const notifications = [...log.matchAll(/sender non-delivery notification|sender delay notification/g)].length
    const queue = await postfix.queue()
    const deferredAny = new Set([...sender.stats.deferred, ...deferredInQueue])

    // Aliases and alias-domain addresses were rewritten to their target account on arrival, so a
    // held one is routed by an account that other traffic may have made warm again.
    const heldDeferred = Object.entries(
      messages
        .filter((msg) => msg.hold)
        .reduce<Record<string, [number, number]>>((acc, msg) => {
          const [d, n] = acc[msg.rcpt.kind] ?? [0, 0]
          acc[msg.rcpt.kind] = [d + (deferredInQueue.has(msg.id) ? 1 : 0), n + 1]
          return acc
        }, {}),
    )
      .map(([kind, [d, n]]) => `${kind} ${d} of ${n}`)
      .join(', ')
    const metrics = await scrape(m.ports.http)
    const lookups = (match: Record<string, string>) => total(metrics, 'mailhostd_lookups_total', { protocol: 'socketmap', ...match })
    const kinds = messages.reduce<Record<string, number>>((acc, msg) => ((acc[msg.rcpt.kind] = (acc[msg.rcpt.kind] ?? 0) + 1), acc), {})

    t.comment(
      [
        `CHAOS MAIL (${SIZE.name}): ${messages.length} messages sent, ${delivered.length} delivered to the right backend, ` +
          `${misrouted.length} misrouted, ${missing.length} missing, ${duplicated.length} duplicated, ` +
          `${bounced} bounced or expired, ${sender.stats.rejected.length} refused with 5xx, ${dsns} DSNs at the backends`,
        `recipients: ${Object.entries(kinds).map(([k, n]) => `${k} ${n}`).join(', ')}; ${used.length} directory keys used`,
        `deferred then delivered: ${deferredAny.size} messages (${sender.stats.deferred.size} refused with 4xx by Postfix first: ` +
          `${sender.stats.rcpt4xx.count} at RCPT, ${sender.stats.data4xx.count} at DATA; ${deferredInQueue.size} deferred in Postfix's queue, ` +
          `${resolverFailures} address resolver failures)`,
        `mailhostd dropped its cache ${cacheDrops()} time(s) (change-bus resync after the PostgreSQL restart)`,
        `mailhostd warnings and errors: ${warnings()}`,
        `postmaster notices: ${notices.length} (${noticeSubjects.join('; ')}); anything else without a route: ${unexpected.length}`,
        `held in Postfix's queue and released during slapd outage ${releaseAt + 1}: ${released}; deferred there, by recipient kind: ${heldDeferred}`,
        `while slapd was down: ${firstSentInOutage} messages first sent, ${coldInOutage} of them to a key never asked before`,
        `SMTP: ${sender.stats.attempts} attempts for ${messages.length} messages, ${sender.stats.sessionErrors.length} broken sessions`,
        ...describeOutages(outages),
        `mailhostd socketmap lookups: ${lookups({})} (${lookups({ layer: 'stale' })} answered stale, ` +
          `${lookups({ outcome: 'temp' })} TEMP, ${lookups({ layer: 'directory' })} from the directory); ` +
          `stale served ${total(metrics, 'mailhostd_cache_stale_served_total')}, directory errors ${total(metrics, 'mailhostd_directory_errors_total')}`,
        `times: stream ${((streamEnded - t0) / 1000).toFixed(1)} s, all accepted by Postfix ${((acceptedAll - t0) / 1000).toFixed(1)} s, ` +
          `all delivered ${((drained - t0) / 1000).toFixed(1)} s after the first message; file ${((Date.now() - started) / 1000).toFixed(1)} s`,
      ].join('\n'),
    )

    t.equal(outages.filter((o) => o.peer === 'slapd').length, 3, 'slapd was killed and restarted three times')
    t.equal(outages.filter((o) => o.peer === 'postgres').length, 1, 'PostgreSQL once')
    t.same(sender.stats.rejected, [], 'no message refused with a 5xx')
    t.equal(missing.length, 0, `every message delivered (missing: ${missing.slice(0, 10).map((x) => x.rcpt.address).join(', ')})`)
    t.equal(misrouted.length, 0, `none in the wrong sink (${misrouted.slice(0, 10).map((x) => x.rcpt.address).join(', ')})`)
    t.equal(duplicated.length, 0, 'none delivered twice')
    t.equal(wrongRecipient.length, 0, `aliases, extensions and domains resolved as the directory says (${wrongRecipient.slice(0, 5).map((x) => `${x.rcpt.address} -> ${JSON.stringify(landed.get(x.id))}`).join('; ')})`)
    t.equal(delivered.length, messages.length, 'all delivered')
    t.equal(bounced, 0, 'no status=bounced or expired in the mail log')
    t.equal(notifications, 0, 'no delivery status notification generated')
    t.equal(dsns, 0, 'no DSN or foreign message reached a backend')
    t.same(
      unexpected.map((msg) => `<${msg.mailFrom}> -> ${msg.rcptTo.join(',')}`),
      [],
      'nothing but postmaster notices took the default route: no DSN, no bounce to a sender',
    )
    t.same(queue.length, 0, "Postfix's queue is empty: nothing waits, no bounce to the sender is pending")
    if (queue.length > 0) {
      // What is left says why: the envelope of each kind, and the text of the first one.
      const kinds = queue.reduce<Record<string, number>>((acc, e) => {
        const k = `${e.queue_name} from <${e.sender}> to ${e.recipients.map((r) => `<${r.address}> (${r.delay_reason ?? ''})`).join(' ')}`
        acc[k] = (acc[k] ?? 0) + 1
        return acc
      }, {})
      const first = await run('postcat', ['-c', postfix.configDir, '-q', queue[0]!.queue_id])
      t.comment(`left in the queue:\n${Object.entries(kinds).map(([k, n]) => `${n} x ${k}`).join('\n')}\nfirst one:\n${first.stdout.slice(0, 4000)}`)
    }
    t.ok(sender.stats.deferred.size > 0, 'cold keys during the outages were refused temporarily and retried')
    t.equal(released, SIZE.held, 'every held message was in the hold queue when released')
    t.ok(cacheDrops() > 0, 'mailhostd dropped its cache after the PostgreSQL restart')
    t.ok(deferredInQueue.size > 0, "queued mail whose keys were cold was deferred by Postfix, not bounced, and retried")
    t.ok(total(metrics, 'mailhostd_cache_stale_served_total') > 0, 'warm keys were answered from the stale reserve')
    t.equal(m.proc.child.exitCode, null, 'mailhostd ran throughout')
    // A bounce would be addressed to the envelope sender, in SENDER_DOMAIN.
    t.notMatch(log, new RegExp(`to=<[^>]*@${SENDER_DOMAIN.replace('.', '\\.')}>`), 'no mail of any kind addressed to a sender')
  })
})
