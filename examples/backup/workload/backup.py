# The backup workload: archive $BACKUP_SOURCE into $BACKUP_DIR every $BACKUP_INTERVAL
# seconds and record a Pebble custom notice for each archive, through the API on
# $PEBBLE_SOCKET (any Pebble client would do; this one is plain http.client).
# The charm passes this text to `python3 -c`, so it must not contain single quotes.
import http.client, json, os, socket, tarfile, time

class Pebble(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost")
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)

def notify(key, data):
    conn = Pebble(os.environ["PEBBLE_SOCKET"])
    body = json.dumps({"action": "add", "type": "custom", "key": key, "data": data})
    conn.request("POST", "/v1/notices", body, {"Content-Type": "application/json"})
    reply = json.loads(conn.getresponse().read())
    print("recorded notice", reply["result"]["id"], key, data, flush=True)

source = os.environ["BACKUP_SOURCE"]
target = os.environ["BACKUP_DIR"]
interval = int(os.environ["BACKUP_INTERVAL"])
os.makedirs(target, exist_ok=True)
while True:
    path = os.path.join(target, "backup-%d.tar.gz" % time.time_ns())
    try:
        with tarfile.open(path, "w:gz") as tar:
            tar.add(source, arcname=os.path.basename(source.rstrip("/")) or "root")
        notify("example.com/backup/done", {"path": path, "bytes": str(os.path.getsize(path))})
    except Exception as e:
        notify("example.com/backup/failed", {"error": str(e)})
    time.sleep(interval)
