"""Renders a results file of `python -m bench` as the Markdown tables of docs/benchmarks.md.

`python -m bench.report bench/results/TIMESTAMP.json`
"""
import json, sys
r = json.load(open(sys.argv[1]))
m = r["machine"]
print(f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM; Python {m['python']}, Node {m['node']}; {m['os']}.")
print(f"Load average (1, 5, 15 min) at start {m['load_avg_at_start']}, at end {m['load_avg_at_end']}.\n")
if "collection" in r:
    c = r["collection"]
    print("**4. Collection cost**: `system` sample %s µs, bare psutil calls %s µs: **x%s** (target ≤ 1.2).\n" % (c["sample_us"], c["psutil_floor_us"], c["ratio"]))
rows = r.get("fanout", []) + r.get("polling", []) + r.get("batched", [])
if rows:
    print("**1-2. Fan-out** (%s B padding, ~1 KB envelope; `rate` = %s envelopes/s, `max` = as fast as possible; the same Node client processes for every server)\n" % (r["args"]["bytes"], r["args"]["rate"]))
    print("| transport | clients | server | mode | deliveries/s | × Node | CPU-s per 10k | × Node | p50 ms | p99 ms | server fan-out per envelope p50/p99 ms |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    base = {(x["scenario"], x["clients"]): x for x in rows if x["server"] == "node"}
    for x in rows:
        b = base[(x["scenario"], x["clients"])]
        for mode in x.get("modes", ("rate", "max")):
            a, bb = x[mode], b[mode]
            rd = f"{a['deliveries_per_s']/bb['deliveries_per_s']:.2f}" if bb["deliveries_per_s"] else "-"
            rc = f"{a['cpu_s_per_10k']/bb['cpu_s_per_10k']:.2f}" if bb["cpu_s_per_10k"] else "-"
            print(f"| {x['scenario']} | {x['clients']} | {x['server']} | {mode} | {a['deliveries_per_s']} | {rd} | {a['cpu_s_per_10k']} | {rc} | {a['p50_ms']} | {a['p99_ms']} | {a.get('publish_ms_p50')}/{a.get('publish_ms_p99')} |")
    for x in rows:
        if "profile" in x:
            p = x["profile"]
            print(f"\nProfile (py-spy, {p.get('samples')} samples, fast dashboard, {x['clients']} clients, max rate), self time:")
            for k, v in list(p.get("self_percent", {}).items())[:8]:
                print(f"- {v}% `{k}`")
    print()
if "idle" in r:
    i = r["idle"]
    d, g = i["dashboard"], i.get("glances", {})
    print("**3. Idle cost** (%s s, every emitter on, one subscribed client; Glances `-w --disable-webui -t 1`, fetched at 1 Hz):\n" % r["args"]["idle_seconds"])
    print("| | CPU % of a core | RSS MiB |\n|---|---|---|")
    print(f"| dashboard | {d['cpu_percent']} | {d['rss_mib']} |")
    if "cpu_percent" in g:
        print(f"| Glances | {g['cpu_percent']} | {g['rss_mib']} |")
        print(f"| ratio | x{d['cpu_percent']/g['cpu_percent']:.2f} (target < 0.5) | {d['rss_mib']} MiB (target < 60) |")
    print()
if "memory" in r:
    print("**5. Memory per idle client** (connected to the namespace, no subscription):\n")
    print("| server | transport | clients | held | connect s | RSS before → after MiB | MiB per 1,000 |\n|---|---|---|---|---|---|---|")
    for x in r["memory"]:
        print(f"| {x['server']} | {x['transport']} | {x['clients']} | {x['held_after_2s']} | {x['connect_s']} | {x['rss_before_mib']} → {x['rss_after_mib']} | {x['mib_per_1000']} |")
