// The official TypeScript SDK (@pythnetwork/pyth-lazer-sdk) against the same simulator
// stream as the Python readers; run by benchmarks/ts_sdk.py with the machine's Node.js.
//
//   node benchmarks/ts_sdk_bench.mjs --sdk-dir DIR --url ws://... --conns 4 \
//        --delivery json|binary --mode throughput|latency --warmup 1 --seconds 3
//
// throughput: unique updates/s as the SDK delivers them (its addMessageListener
//   handler, called after its own dedup across connections), frames read on all
//   connections, CPU seconds (process.cpuUsage) per 100,000 updates.
// latency: prints "ready" once every connection is open, waits for "go" on stdin
//   (the parent may delay a connection first), then for each update the time from its
//   timestamp to the handler call, on the wall clock (calibrated, see wallClockUs).
// The last line of standard output is one JSON object.

import { createRequire } from "node:module";
import { join } from "node:path";
import { createInterface } from "node:readline";

function parseArgs(argv) {
  const out = { conns: 4, delivery: "json", mode: "throughput", warmup: 1, seconds: 3 };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, "").replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    out[key] = argv[i + 1];
  }
  for (const k of ["conns", "warmup", "seconds"]) out[k] = Number(out[k]);
  return out;
}

const args = parseArgs(process.argv.slice(2));
const sdkRequire = createRequire(join(args.sdkDir, "package.json"));
const { PythLazerClient } = sdkRequire("@pythnetwork/pyth-lazer-sdk");
const sdkVersion = sdkRequire("@pythnetwork/pyth-lazer-sdk/package.json").version;

const PROPERTIES = ["price", "bestBidPrice", "bestAskPrice", "exponent", "publisherCount"];
const binary = args.delivery === "binary";
const request = {
  type: "subscribe",
  subscriptionId: 1,
  priceFeedIds: [1],
  properties: PROPERTIES,
  formats: binary ? ["leUnsigned"] : [],
  deliveryFormat: args.delivery,
  jsonBinaryEncoding: "base64",
  parsed: !binary,
  channel: "real_time",
};

// Date.now() has millisecond resolution; performance.now() is finer but has its own
// origin. Align the two where Date.now() ticks over to the next millisecond (that
// instant is a whole millisecond of wall-clock time), median of 25 ticks.
function calibrate() {
  const offsets = [];
  for (let k = 0; k < 25; k++) {
    const d0 = Date.now();
    let d = d0;
    while (d === d0) d = Date.now();
    offsets.push(performance.timeOrigin + performance.now() - d);
  }
  offsets.sort((a, b) => a - b);
  return offsets[Math.floor(offsets.length / 2)];
}
const clockOffsetMs = calibrate();
function wallClockUs() {
  return (performance.timeOrigin + performance.now() - clockOffsetMs) * 1000;
}

function timestampUs(message) {
  if (message.type === "json") {
    const ts = message.value?.parsed?.timestampUs;
    return ts === undefined ? undefined : Number(ts);
  }
  // leUnsigned envelope: magic u32, payload length u16, payload (magic u32, timestamp u64 LE).
  const env = message.value?.leUnsigned;
  return env === undefined ? undefined : Number(env.readBigUInt64LE(10));
}

function percentiles(samples) {
  if (samples.length === 0) return { n: 0 };
  const s = Float64Array.from(samples).sort();
  const n = s.length;
  const rank = (q) => s[Math.min(n - 1, Math.max(0, Math.round(q * n) - 1))];
  const mean = s.reduce((a, b) => a + b, 0) / n;
  return { n, p50: rank(0.5), p90: rank(0.9), p99: rank(0.99), "p99.9": rank(0.999), max: s[n - 1], mean };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function main() {
  const client = await PythLazerClient.create({
    token: "bench",
    webSocketPoolConfig: { urls: [args.url], numConnections: args.conns },
  });
  const pool = client.getWebSocketPool();
  let frames = 0;
  for (const rws of pool.rwsPool) {
    const inner = rws.onMessage;
    rws.onMessage = (data) => {
      frames += 1;
      inner(data);
    };
  }
  let updates = 0;
  let measuring = false;
  const samples = [];
  client.addMessageListener((message) => {
    updates += 1;
    if (measuring) {
      const ts = timestampUs(message);
      if (ts !== undefined) samples.push((wallClockUs() - ts) / 1000);
    }
  });
  client.subscribe(request);
  const deadline = Date.now() + 20000;
  while (!pool.rwsPool.every((rws) => rws.isConnected())) {
    if (Date.now() > deadline) throw new Error("not every connection opened within 20 s");
    await sleep(10);
  }
  if (args.mode === "latency") {
    console.log("ready");
    const lines = createInterface({ input: process.stdin });
    for await (const line of lines) {
      if (line.trim() === "go") break;
    }
    lines.close();
  }
  await sleep(args.warmup * 1000);
  const u0 = updates;
  const f0 = frames;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  measuring = args.mode === "latency";
  await sleep(args.seconds * 1000);
  measuring = false;
  const dt = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(c0);
  const unique = updates - u0;
  const cpuS = (cpu.user + cpu.system) / 1e6;
  const result = {
    sdk_version: sdkVersion,
    node_version: process.version,
    conns: args.conns,
    delivery: args.delivery,
    mode: args.mode,
    unique_per_s: unique / dt,
    frames_per_s: (frames - f0) / dt,
    frames_per_unique: unique ? (frames - f0) / unique : null,
    cpu_s: cpuS,
    cpu_s_per_100k: unique ? (cpuS / unique) * 1e5 : null,
  };
  if (args.mode === "latency") {
    result.latency_ms = percentiles(samples);
    result.samples_ms = samples.map((v) => Math.round(v * 10000) / 10000);
    result.updates_per_s = samples.length / dt;
  }
  client.shutdown();
  finish(result, 0);
}

// Writes to a pipe are asynchronous in Node.js: exit only once the line is out, or a
// result longer than the pipe's buffer (64 KiB) would be cut short.
function finish(result, code) {
  process.stdout.write(JSON.stringify(result) + "\n", () => process.exit(code));
}

main().catch((error) => finish({ error: String(error?.stack ?? error) }, 1));
