#!/usr/bin/env python3
"""Load client for an OpenAI-compatible /v1/completions server already running on 127.0.0.1.

  /usr/bin/python3 bench/serve_load.py --port 8000 [--conc 64] [--rounds 2] [--max-tokens 64] [--stream]
                                       [--pid PID] [--ban-bytes] [--label NAME]

The request shape follows ../shared/anchors/server_bench.py (the anchors' llama-server client), so
both servers get the same load: C worker threads, each sending `rounds` sequential requests with
distinct prompts, temperature 0, ignore_eos, max_tokens; --ban-bytes adds the anchors' logit_bias
that keeps a random model off byte-fallback tokens (llama-server answers 500 on invalid UTF-8;
Tidal holds incomplete bytes back and needs no ban). With --stream every request is an SSE stream
(stream_options.include_usage). Each worker keeps one keep-alive connection.

Prints one JSON line: tokens, wall seconds, aggregate tok/s, and, with --pid, the server process's
CPU seconds (from /proc/PID/stat) during the load and per generated token. When the server exposes
Tidal's CPU split in /metrics (tidal_cpu_*), the front-end share is reported as well.
"""
import argparse, http.client, json, os, threading, time, urllib.request


def proc_cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def tidal_cpu(port):
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    except Exception:
        return None
    out = {}
    for line in text.splitlines():
        for name in ("tidal_cpu_process_seconds", "tidal_cpu_engine_step_seconds", "tidal_cpu_frontend_seconds",
                     "tidal_generation_tokens_total"):
            if line.startswith(name + " "):
                out[name] = float(line.split()[1])
    return out if len(out) == 4 else None


def request(conn, body, stream):
    conn.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
    resp = conn.getresponse()
    if resp.status != 200:
        raise RuntimeError(f"HTTP {resp.status}: {resp.read()[:300]!r}")
    if not stream:
        return json.loads(resp.read())["usage"]["completion_tokens"]
    usage, chunks = None, 0
    while True:
        line = resp.readline()
        if not line:
            break
        line = line.strip()
        if not line.startswith(b"data: "):
            continue
        data = line[6:]
        if data == b"[DONE]":
            break
        ev = json.loads(data)
        if ev.get("usage"):
            usage = ev["usage"]["completion_tokens"]
        if ev.get("choices"):
            chunks += 1
    resp.read()  # the last chunk of the chunked body, so the connection can be reused
    return usage if usage is not None else chunks


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--conc", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--stream", action="store_true")
    ap.add_argument("--ban-bytes", action="store_true")
    ap.add_argument("--pid", type=int, default=0)
    ap.add_argument("--label", default="")
    a = ap.parse_args()
    extra = {"logit_bias": [[t, False] for t in range(3, 259)]} if a.ban_bytes else {}
    stream_extra = {"stream": True, "stream_options": {"include_usage": True}} if a.stream else {}

    # Warm-up (not measured).
    warm = http.client.HTTPConnection("127.0.0.1", a.port, timeout=600)
    request(warm, {"prompt": "warm up", "max_tokens": 8, "temperature": 0, **extra}, False)
    warm.close()

    toks, errors = [], []
    lock = threading.Lock()

    def worker(w):
        conn = http.client.HTTPConnection("127.0.0.1", a.port, timeout=600)
        for r in range(a.rounds):
            prompt = f"Request {w}-{r}: the quick brown fox jumps over the lazy dog {w * 1000 + r}"
            body = {"prompt": prompt, "max_tokens": a.max_tokens, "temperature": 0, "ignore_eos": True,
                    "cache_prompt": False, **extra, **stream_extra}
            try:
                try:
                    n = request(conn, body, a.stream)
                except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                    # The server closed the kept-alive connection (llama-server does after a
                    # stream): the request was not read; send it again on a new connection.
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", a.port, timeout=600)
                    n = request(conn, body, a.stream)
            except Exception as e:  # noqa: BLE001 - reported below
                with lock:
                    errors.append(str(e))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", a.port, timeout=600)
                continue
            with lock:
                toks.append(n)
        conn.close()

    cpu0 = proc_cpu_seconds(a.pid) if a.pid else None
    t_cpu0 = tidal_cpu(a.port)
    threads = [threading.Thread(target=worker, args=(w,)) for w in range(a.conc)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.time() - t0
    cpu1 = proc_cpu_seconds(a.pid) if a.pid else None
    t_cpu1 = tidal_cpu(a.port)
    total = sum(toks)
    out = {"label": a.label, "conc": a.conc, "requests": len(toks), "errors": len(errors), "stream": a.stream,
           "completion_tokens": total, "wall_s": round(wall, 3), "tok_per_s": round(total / wall, 2) if wall else 0}
    if errors:
        out["first_error"] = errors[0][:300]
    if cpu0 is not None:
        out["server_cpu_s"] = round(cpu1 - cpu0, 3)
        out["server_cpu_ms_per_token"] = round(1000 * (cpu1 - cpu0) / total, 3) if total else None
    if t_cpu0 and t_cpu1:
        d = {k: t_cpu1[k] - t_cpu0[k] for k in t_cpu0}
        gen = d["tidal_generation_tokens_total"]
        out["tidal_cpu_process_s"] = round(d["tidal_cpu_process_seconds"], 3)
        out["tidal_cpu_engine_step_s"] = round(d["tidal_cpu_engine_step_seconds"], 3)
        out["tidal_cpu_frontend_s"] = round(d["tidal_cpu_frontend_seconds"], 3)
        out["frontend_cpu_pct"] = round(100 * d["tidal_cpu_frontend_seconds"] / d["tidal_cpu_process_seconds"], 2) \
            if d["tidal_cpu_process_seconds"] > 0 else None
        out["frontend_cpu_us_per_token"] = round(1e6 * d["tidal_cpu_frontend_seconds"] / gen, 1) if gen else None
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
