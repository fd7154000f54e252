"""What the recording peers of captures/*_peers.py share: the log of the messages each side sent
(NAME.peers.json, as the golden tests read it) and a throw-away certificate for TLS servers."""
import hashlib, json, os, subprocess, tempfile, threading

MESSAGES = []
_LOCK = threading.Lock()


def sent(direction, opcode, data):
    """One message a peer sent: `direction` c2s or s2c, `opcode` 1 (text) or 2 (binary)."""
    data = data.encode() if isinstance(data, str) else data
    with _LOCK:
        MESSAGES.append({"dir": direction, "opcode": opcode, "length": len(data), "sha256": hashlib.sha256(data).hexdigest()})


def write_log(logfile, note, **extra):
    with open(logfile, "w") as out:
        json.dump({"messages": MESSAGES, **extra, "note": note}, out, indent=1)
        out.write("\n")


def self_signed_certificate():
    """A work directory with cert.pem and key.pem for CN=localhost, valid two days: (directory, cert, key)."""
    work = tempfile.mkdtemp()
    cert, key = os.path.join(work, "cert.pem"), os.path.join(work, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "2",
                    "-subj", "/CN=localhost"], check=True, capture_output=True)
    return work, cert, key
