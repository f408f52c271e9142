#!/usr/bin/env python3
"""Graceful shutdown with N open SSE streams (default 10 000): how long after SIGTERM every
body has ended (cleanly: chunked terminator, no `end` event) and the process has exited.

Usage: python3 bench/scripts/shutdown.py [N] [path/to/chunkstream]
(build first: cargo build --release; needs an fd limit above N, e.g. ulimit -n 20000)
"""
import socket, subprocess, time, os, selectors, signal, sys
N=int(sys.argv[1]) if len(sys.argv)>1 else 10000
BIN=sys.argv[2] if len(sys.argv)>2 else os.path.join(os.path.dirname(__file__), "../../target/release/chunkstream")
srv=subprocess.Popen([BIN,"--addr","127.0.0.1:3995","--max-streams",str(N+100)],stderr=subprocess.DEVNULL,env={**os.environ,"RUST_LOG":"warn"})
time.sleep(0.5)
socks=[]
for i in range(N):
    s=socket.create_connection(("127.0.0.1",3995))
    s.sendall(b"GET /stream/sse?count=100&interval_ms=5000 HTTP/1.1\r\nHost: x\r\n\r\n")
    s.setblocking(False)
    socks.append(s)
# wait until every stream has its first event
got={}
deadline=time.time()+30
sel=selectors.DefaultSelector()
for s in socks: sel.register(s, selectors.EVENT_READ)
data={s:b"" for s in socks}
while len(got)<N and time.time()<deadline:
    for key,_ in sel.select(timeout=1):
        s=key.fileobj
        try: chunk=s.recv(65536)
        except BlockingIOError: continue
        data[s]+=chunk
        if b"id: 0" in data[s]: got[s]=1
print("streams open:", len(got))
rss=open(f"/proc/{srv.pid}/status").read().split("VmRSS:")[1].split()[0]
print("server RSS KiB:", rss)
t0=time.time()
srv.send_signal(signal.SIGTERM)
ended=0; clean=0; sawend=0
deadline=time.time()+10
open_socks=set(socks)
while open_socks and time.time()<deadline:
    for key,_ in sel.select(timeout=0.5):
        s=key.fileobj
        try: chunk=s.recv(65536)
        except BlockingIOError: continue
        except ConnectionResetError: chunk=b""; 
        if chunk: data[s]+=chunk; continue
        sel.unregister(s); open_socks.discard(s); ended+=1
        if data[s].endswith(b"0\r\n\r\n"): clean+=1
        if b"event: end" in data[s]: sawend+=1
t_last=time.time()-t0
rc=srv.wait(timeout=10); t_exit=time.time()-t0
print(f"all bodies ended: {ended}/{N} in {t_last*1000:.0f} ms; clean chunked end: {clean}; with 'end' event: {sawend}; exit {rc} at {t_exit*1000:.0f} ms after SIGTERM")
