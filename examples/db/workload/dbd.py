#!/usr/bin/env python3
"""The db workload: a small key-value database on SQLite, and its dump tool.

    dbd.py serve --db FILE --port N [--backup-dir DIR --backup-interval S]
        Serves the keys over HTTP on 127.0.0.1:N (GET/PUT/DELETE /keys/<key>,
        GET /keys, GET /health). With a backup interval, dumps the database into
        the backup directory every S seconds and records the Pebble custom notice
        example.com/db/backup (data: path, bytes, rows) through the API on
        $PEBBLE_SOCKET, or example.com/db/backup-failed (data: error).

    dbd.py dump --db FILE --out FILE [--table T] [--gzip]
        Writes an SQL dump (of one table with --table) atomically to FILE and prints
        {"path": ..., "bytes": ..., "tables": ..., "rows": ...} as JSON. Exits 2 with
        the reason on stderr when it cannot (a missing database or table).
"""
import argparse, gzip, http.client, http.server, io, json, os, socket, sqlite3, sys
import threading, time


def connect(db):
    conn = sqlite3.connect(db, check_same_thread=False)
    conn.execute("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.commit()
    return conn


def dump(db, out, table=None, compress=False):
    """Dumps `db` into `out` (temp file, fsync, rename); returns what it wrote."""
    if not os.path.exists(db):
        raise LookupError("no database at %s" % db)
    conn = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
    try:
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        if table is not None:
            if table not in tables:
                raise LookupError("no such table: %s" % table)
            tables = [table]
        rows = 0
        os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
        tmp = "%s.tmp-%d" % (out, os.getpid())
        with open(tmp, "wb") as raw:
            sink = gzip.GzipFile(fileobj=raw, mode="wb") if compress else raw
            f = io.TextIOWrapper(sink, encoding="utf-8")
            f.write("BEGIN TRANSACTION;\n")
            for t in tables:
                sql = conn.execute(
                    "SELECT sql FROM sqlite_master WHERE type='table' AND name=?", (t,)
                ).fetchone()[0]
                f.write("%s;\n" % sql)
                cols = [c[1] for c in conn.execute("PRAGMA table_info(%s)" % quote(t))]
                for row in conn.execute("SELECT * FROM %s" % quote(t)):
                    values = ",".join(literal(v) for v in row)
                    f.write("INSERT INTO %s(%s) VALUES(%s);\n" % (
                        quote(t), ",".join(quote(c) for c in cols), values))
                    rows += 1
            f.write("COMMIT;\n")
            f.flush()
            f.detach()
            if compress:
                sink.close()
            raw.flush()
            os.fsync(raw.fileno())
        os.rename(tmp, out)
        return {"path": out, "bytes": os.path.getsize(out), "tables": len(tables), "rows": rows}
    finally:
        conn.close()


def quote(name):
    return '"%s"' % name.replace('"', '""')


def literal(v):
    if v is None:
        return "NULL"
    if isinstance(v, (int, float)):
        return repr(v)
    return "'%s'" % str(v).replace("'", "''")


class Pebble(http.client.HTTPConnection):
    """An HTTP connection to the Pebble API on a unix socket."""

    def __init__(self, path):
        super().__init__("localhost")
        self.socket_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.socket_path)


def notify(key, data):
    conn = Pebble(os.environ["PEBBLE_SOCKET"])
    body = json.dumps({"action": "add", "type": "custom", "key": key, "data": data})
    conn.request("POST", "/v1/notices", body, {"Content-Type": "application/json"})
    reply = json.loads(conn.getresponse().read())
    print("recorded notice", reply["result"]["id"], key, data, flush=True)


def scheduled_backups(db, directory, interval):
    while True:
        time.sleep(interval)
        out = os.path.join(directory, "scheduled-%d.sql" % time.time_ns())
        try:
            info = dump(db, out)
            notify("example.com/db/backup",
                   {"path": info["path"], "bytes": str(info["bytes"]), "rows": str(info["rows"])})
        except Exception as e:
            notify("example.com/db/backup-failed", {"error": str(e)})


def serve(args):
    conn = connect(args.db)
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        def reply(self, code, body):
            data = (json.dumps(body) + "\n").encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def key(self):
            if self.path.startswith("/keys/") and len(self.path) > len("/keys/"):
                return self.path[len("/keys/"):]
            self.reply(404, {"error": "not found"})
            return None

        def do_GET(self):
            if self.path == "/health":
                return self.reply(200, {"ok": True})
            with lock:
                if self.path == "/keys":
                    keys = [r[0] for r in conn.execute("SELECT key FROM kv ORDER BY key")]
                    return self.reply(200, keys)
                key = self.key()
                if key is None:
                    return
                row = conn.execute("SELECT value FROM kv WHERE key=?", (key,)).fetchone()
            if row is None:
                return self.reply(404, {"error": "no key %s" % key})
            self.reply(200, {"key": key, "value": row[0]})

        def do_PUT(self):
            key = self.key()
            if key is None:
                return
            value = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
            with lock:
                conn.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (key, value))
                conn.commit()
            self.reply(200, {"key": key, "value": value})

        def do_DELETE(self):
            key = self.key()
            if key is None:
                return
            with lock:
                conn.execute("DELETE FROM kv WHERE key=?", (key,))
                conn.commit()
            self.reply(200, {"key": key})

        def log_message(self, fmt, *a):
            print("%s %s" % (self.address_string(), fmt % a), flush=True)

    if args.backup_interval > 0:
        threading.Thread(
            target=scheduled_backups,
            args=(args.db, args.backup_dir, args.backup_interval),
            daemon=True,
        ).start()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print("serving %s on 127.0.0.1:%d" % (args.db, args.port), flush=True)
    server.serve_forever()


def main():
    p = argparse.ArgumentParser(prog="dbd")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--db", required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--backup-dir", default="")
    s.add_argument("--backup-interval", type=int, default=0)
    d = sub.add_parser("dump")
    d.add_argument("--db", required=True)
    d.add_argument("--out", required=True)
    d.add_argument("--table")
    d.add_argument("--gzip", action="store_true")
    args = p.parse_args()
    if args.cmd == "serve":
        serve(args)
        return
    try:
        info = dump(args.db, args.out, args.table, args.gzip)
    except (LookupError, sqlite3.Error, OSError) as e:
        print("cannot dump %s: %s" % (args.db, e), file=sys.stderr)
        sys.exit(2)
    print(json.dumps(info))


if __name__ == "__main__":
    main()
