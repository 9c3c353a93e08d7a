'use strict'
// The lab's Node sample app: real dd-trace and hot-shots (docs/apps.md#the-node-sample-app).
//
// As the Datadog ECS APM docs allow for Node, the agent host is set in code from IMDS local-ipv4.
// One change from the docs' snippet (init(), then tracer.setUrl()): the host is asked for first and
// handed to init(), because dd-trace's setUrl() re-points only the trace exporter (and data streams);
// the client-side stats exporter, telemetry and remote config keep the URL init() gave them, so with
// DD_TRACE_STATS_COMPUTATION_ENABLED their payloads would go to localhost:8126.
//
// The IMDS base URL comes from AWS_EC2_METADATA_SERVICE_ENDPOINT, never the 169.254.169.254 default:
// on the lab's host that address belongs to someone else (the Python app follows the same rule).
//
// While it runs, every LAB_NODE_WORK_INTERVAL_MS it serves itself one /work request (a traced HTTP
// server span with a custom child span) and sends hot-shots metrics; GET / answers what it resolved.

const fs = require('fs')

const METRIC_PREFIX = 'ecs_lab.node'

// IMDS tries: a container starting on a loaded instance can wait seconds for its first answer (seen:
// one 2 s try timed out at load 12-15). The docs' snippet sets no timeout at all; the AWS SDKs retry.
const IMDS_ATTEMPTS = 3
const IMDS_TIMEOUT_MS = 2000

async function imdsToken (base) {
  let last = null
  for (let attempt = 1; attempt <= IMDS_ATTEMPTS; attempt++) {
    try {
      const put = await fetch(`${base}/latest/api/token`, {
        method: 'PUT',
        headers: { 'X-aws-ec2-metadata-token-ttl-seconds': '21600' },
        signal: AbortSignal.timeout(IMDS_TIMEOUT_MS)
      })
      return put.ok ? (await put.text()).trim() : null
    } catch (err) {
      last = err  // no answer (refused, reset, timed out): try again, a bounded number of times
    }
  }
  throw new Error(`IMDS at ${base} is unreachable: ${last.message} (${IMDS_ATTEMPTS} tries)`)
}

async function imdsLocalIpv4 (base) {
  // The SDKs' order: an IMDSv2 token first; without one (PUT refused), a tokenless GET.
  const token = await imdsToken(base)
  const res = await fetch(`${base}/latest/meta-data/local-ipv4`, {
    headers: token ? { 'X-aws-ec2-metadata-token': token } : {},
    signal: AbortSignal.timeout(IMDS_TIMEOUT_MS)
  })
  if (!res.ok) throw new Error(`IMDS local-ipv4 from ${base} failed: HTTP ${res.status}`)
  const ip = (await res.text()).trim()
  if (!ip) throw new Error(`IMDS at ${base} answered an empty local-ipv4`)
  return ip
}

async function main () {
  const base = (process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT || '').trim().replace(/\/+$/, '')
  if (!base) {
    throw new Error('AWS_EC2_METADATA_SERVICE_ENDPOINT is not set: the lab hands every app its IMDS ' +
      'endpoint and a lab app never falls back to http://169.254.169.254')
  }
  for (const override of ['DD_TRACE_AGENT_URL', 'DD_DOGSTATSD_URL']) {
    // Either would win over the host set here, and the in-code lookup would be bypassed unseen.
    if (process.env[override]) throw new Error(`${override} is set; it overrides the in-code agent host: unset it`)
  }
  const agentHost = await imdsLocalIpv4(base)
  console.log(`agent host ${agentHost} from IMDS local-ipv4 at ${base}`)

  // dd-trace before any instrumented module (http) is required: its hooks patch them on require.
  const tracer = require('dd-trace').init({ hostname: agentHost })
  const StatsD = require('hot-shots')
  const http = require('http')

  const dogstatsdPort = Number(process.env.DD_DOGSTATSD_PORT || 8125)
  const statsd = new StatsD({
    host: agentHost,
    port: dogstatsdPort,
    globalTags: { app: 'ecs-lab-node', env: process.env.DD_ENV || '', service: process.env.DD_SERVICE || '' },
    errorHandler: (err) => console.error(`hot-shots: ${err.message}`)
  })
  const settings = {
    agent_host: agentHost,
    agent_host_from: 'imds',
    apm_port: Number(process.env.DD_TRACE_AGENT_PORT || 8126),
    dogstatsd_port: dogstatsdPort,
    service: process.env.DD_SERVICE || '',
    tracer: 'dd-trace-js',
    tracer_version: require('dd-trace/package.json').version
  }

  const server = http.createServer((req, res) => {
    if (req.url.startsWith('/work')) {
      tracer.trace('work.step', { resource: 'node-work' }, () => {
        statsd.increment(`${METRIC_PREFIX}.requests`, 1, { route: '/work' })
        statsd.histogram(`${METRIC_PREFIX}.work_ms`, 3, { route: '/work' })
        statsd.gauge(`${METRIC_PREFIX}.up`, 1)
      })
      res.writeHead(200, { 'Content-Type': 'application/json' })
      res.end(JSON.stringify({ ok: true }))
      return
    }
    res.writeHead(200, { 'Content-Type': 'application/json' })
    res.end(JSON.stringify(settings))
  })
  const bind = process.env.LAB_APP_BIND || '127.0.0.1'
  server.listen(Number(process.env.LAB_APP_PORT || 0), bind, () => {
    const port = server.address().port
    if (process.env.LAB_APP_PORT_FILE) fs.writeFileSync(process.env.LAB_APP_PORT_FILE, String(port))
    console.log(`listening on ${bind}:${port}`)
    const every = Number(process.env.LAB_NODE_WORK_INTERVAL_MS || 1000)
    const timer = setInterval(() => {
      http.get({ host: bind, port, path: '/work' }, (r) => r.resume()).on('error', () => {})
    }, every)
    const stop = () => {
      clearInterval(timer)
      server.close()
      // hot-shots sends as it goes; close() lets its socket go. dd-trace flushes on exit.
      statsd.close(() => process.exit(0))
      setTimeout(() => process.exit(0), 2000).unref()
    }
    process.on('SIGTERM', stop)
    process.on('SIGINT', stop)
  })
}

main().catch((err) => {
  console.error(`ecs-lab node app: ${err.message}`)
  process.exit(1)
})
