"""Generate the labelled scrubbing corpus (tests/scrub/corpus.jsonl), deterministically.

Each line: {"text", "secrets": [{"type", "value"}], "context"}. Secrets are planted in realistic
log, diff, YAML, JSON, shell, env-file and CLI lines; hard negatives (UUIDs, git SHAs, sha256
digests, base64 of harmless data, versions, paths, timestamps, placeholders, near-miss names)
carry no secrets, so anything found in them is a false positive.

    python tests/scrub/make_corpus.py      # rewrites corpus.jsonl
"""

from __future__ import annotations

import base64
import json
import random
import string
import uuid
from pathlib import Path

R = random.Random(20261125)
ALNUM = string.ascii_letters + string.digits
B64 = ALNUM + "+/"
HEX = "0123456789abcdef"
WORDS = ["deploy", "build", "api", "worker", "db", "cache", "queue", "auth", "billing", "search"]
HOSTS = ["db.internal", "10.0.3.7", "cache-01", "mq.prod.svc", "api.example.org"]


def rand(chars: str, n: int) -> str:
    return "".join(R.choice(chars) for _ in range(n))


def password() -> str:
    base = R.choice(["Tr0ub4dor", "s3cr3t", "Passw0rd", "zx9Qp", "hunter2", "c0rrectH0rse",
                     "Kq7!mP", "blue-Sky42"])
    return base + rand(ALNUM + "!#%^*_", R.randint(4, 10))


def luhn_complete(prefix: str, length: int) -> str:
    digits = prefix + rand(string.digits, length - len(prefix) - 1)
    for check in string.digits:
        candidate = digits + check
        total, odd = 0, False
        for ch in reversed(candidate):
            d = int(ch)
            if odd:
                d = d * 2 - 9 if d * 2 > 9 else d * 2
            total += d
            odd = not odd
        if total % 10 == 0:
            return candidate
    raise AssertionError


def pem(kind: str) -> str:
    body = "\n".join(rand(B64, 64) for _ in range(R.randint(3, 6)))
    label = f"{kind} PRIVATE KEY" if kind else "PRIVATE KEY"
    return f"-----BEGIN {label}-----\n{body}\n-----END {label}-----"


def jwt() -> str:
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return (part({"alg": "HS256", "typ": "JWT"}) + "." +
            part({"sub": str(R.randint(1000, 99999)), "name": R.choice(WORDS)}) + "." +
            rand(ALNUM + "-_", 43))


def ipv6() -> str:
    groups = [rand(HEX, R.randint(1, 4)) for _ in range(8)]
    if R.random() < 0.5:
        i = R.randint(1, 5)
        return ":".join(groups[:i]) + "::" + ":".join(groups[i + 2:])
    return ":".join(groups)


GENERATORS = {
    "aws_access_key": lambda: "AKIA" + rand(string.ascii_uppercase + string.digits, 16),
    "aws_secret_key": lambda: rand(B64, 40),
    "github_token": lambda: R.choice(["ghp_", "gho_", "ghs_", "ghu_"]) + rand(ALNUM, 36)
    if R.random() < 0.7 else "github_pat_" + rand(ALNUM + "_", 82),
    "gitlab_token": lambda: "glpat-" + rand(ALNUM + "_-", 20),
    "slack_token": lambda: R.choice(["xoxb-", "xoxp-"]) + rand(string.digits, 11) + "-" +
    rand(string.digits, 12) + "-" + rand(ALNUM, 24),
    "slack_webhook": lambda: "https://hooks.slack.com/services/T" + rand(ALNUM.upper(), 8) +
    "/B" + rand(ALNUM.upper(), 10) + "/" + rand(ALNUM, 24),
    "stripe_key": lambda: R.choice(["sk_live_", "rk_live_", "sk_test_"]) + rand(ALNUM, 24),
    "openai_key": lambda: R.choice(["sk-proj-", "sk-"]) + rand(ALNUM + "_-", 48),
    "anthropic_key": lambda: "sk-ant-api03-" + rand(ALNUM + "_-", 93),
    "google_api_key": lambda: "AIza" + rand(ALNUM + "_-", 35),
    "npm_token": lambda: "npm_" + rand(ALNUM, 36),
    "jwt": jwt,
    "private_key": lambda: pem(R.choice(["RSA", "EC", "OPENSSH", "", "DSA"])),
    "password": password,
    "bearer": lambda: rand(ALNUM + "-._", R.randint(24, 48)),
    "azure_storage_key": lambda: rand(B64, 86) + "==",
    "email": lambda: f"{R.choice(['alice', 'bob.smith', 'ops-team', 'j.doe'])}"
    f"{R.randint(1, 99)}@{R.choice(['example.com', 'corp.io', 'mail.co.uk'])}",
    "ipv4": lambda: f"{R.choice([10, 172, 192, 52, 34, 81])}.{R.randint(0, 255)}."
    f"{R.randint(0, 255)}.{R.randint(1, 254)}",
    "ipv6": ipv6,
    "credit_card": lambda: R.choice([
        lambda: luhn_complete("4", 16), lambda: luhn_complete(str(R.randint(51, 55)), 16),
        lambda: luhn_complete(R.choice(["34", "37"]), 15), lambda: luhn_complete("6011", 16),
    ])(),
    "high_entropy": lambda: rand(ALNUM, R.randint(28, 44)),
}

# How each kind is planted: templates with {v}; several contexts per kind.
TEMPLATES = {
    "aws_access_key": [
        "export AWS_ACCESS_KEY_ID={v}", "aws_access_key_id = {v}",
        '{{"AccessKeyId": "{v}", "Expiration": "2026-11-25T12:00:00Z"}}',
        "2026-11-25 10:01:02 INFO assumed role with key {v}", "+  AWS_ACCESS_KEY_ID: {v}"],
    "aws_secret_key": [
        "aws_secret_access_key = {v}", "export AWS_SECRET_ACCESS_KEY={v}",
        '{{"aws_secret_access_key": "{v}"}}', "+    aws_secret_key: {v}"],
    "github_token": [
        "git clone https://x-access-token:{v}@github.com/org/repo.git", "GITHUB_TOKEN={v}",
        "2026-11-25T10:00:00Z DEBUG using token {v} for api.github.com",
        'env:\n  GH_TOKEN: "{v}"'],
    "gitlab_token": ["CI_JOB_TOKEN={v}", "curl --header 'PRIVATE-TOKEN: {v}' https://gitlab.com/api",
                     "+gitlab_token: {v}"],
    "slack_token": ["SLACK_BOT_TOKEN={v}", "slack client init token={v} channel=#ops",
                    '{{"token": "{v}", "channel": "C024BE91L"}}'],
    "slack_webhook": ["notify via {v}", "webhook_url: {v}", 'curl -X POST -d @msg.json {v}'],
    "stripe_key": ["STRIPE_SECRET_KEY={v}", "stripe.api_key = '{v}'",
                   "2026-11-25 ERROR stripe: invalid request with {v}"],
    "openai_key": ["OPENAI_API_KEY={v}", "client = OpenAI(api_key=\"{v}\")",
                   "+  openai_api_key: {v}", "Authorization failed for key {v}"],
    "anthropic_key": ["ANTHROPIC_API_KEY={v}", 'anthropic.Anthropic(api_key="{v}")'],
    "google_api_key": ["https://maps.googleapis.com/maps/api/geocode/json?key={v}",
                       "GOOGLE_API_KEY={v}", '"apiKey": "{v}",'],
    "npm_token": ["//registry.npmjs.org/:_authToken={v}", "NPM_TOKEN={v}"],
    "jwt": ["Cookie: session={v}", "2026-11-25 10:00:00 DEBUG got id_token {v}",
            '{{"access_token": "{v}", "expires_in": 3600}}'],
    "private_key": ["{v}", "ssh_key: |\n  " + "{v}", "+{v}"],
    "password": [
        "password={v}", "DB_PASSWORD={v}", 'db_password: "{v}"', '{{"password": "{v}"}}',
        "mysql -u root --password={v} app", "psql --password {v}",
        "2026-11-25 10:00:03 WARN login retry user=admin passwd={v}",
        "  secret: {v}", "export REDIS_PASSWORD='{v}'", "SMTP_PASS={v}",
        "Server=db01;Database=app;User Id=sa;Password={v};",
        "jdbc:mysql://db.internal:3306/app?user=app&password={v}",
        "postgres://app:{v}@db.internal:5432/app", "redis://:{v}@cache-01:6379/0",
        "amqp://guest:{v}@mq.prod.svc:5672/", "client_secret = \"{v}\"",
        "+    api_key: {v}", "--token={v}", "SECRET_KEY = '{v}'",
    ],
    "bearer": ["Authorization: Bearer {v}", "curl -H 'Authorization: Bearer {v}' https://api",
               "proxy-authorization: Basic {v}", '"headers": {{"Authorization": "Bearer {v}"}}'],
    "azure_storage_key": [
        "DefaultEndpointsProtocol=https;AccountName=acct01;AccountKey={v};"
        "EndpointSuffix=core.windows.net"],
    "email": ["2026-11-25 10:00:00 INFO password reset sent to {v}", "author: {v}",
              "From: Deploy Bot <{v}>", '{{"owner": "{v}"}}', "+Signed-off-by: Jane Doe <{v}>"],
    "ipv4": ["2026-11-25 10:00:00 INFO connection from {v}:51234", "upstream {v}:8080 failed",
             "host: {v}", '{{"client_ip": "{v}"}}', "ssh deploy@{v} 'systemctl restart app'"],
    "ipv6": ["2026-11-25 10:00:00 INFO connection from {v}", "listen [{v}]:443;",
             '{{"remote_addr": "{v}"}}'],
    "credit_card": ["charge card {v} amount=12.00", '{{"card_number": "{v}"}}',
                    "2026-11-25 ERROR payment declined for {v}"],
    "high_entropy": ["signing key is {v}", "X-Api-Key: {v}", "webhook secret: {v}",
                     "the deploy token was {v}"],
}

HARD_NEGATIVES = [
    lambda: f"request_id={uuid.UUID(int=R.getrandbits(128))} status=200 duration=12ms",
    lambda: f"commit {rand(HEX, 40)}\nAuthor: CI <ci>\n",
    lambda: f"Merge: {rand(HEX, 7)} {rand(HEX, 7)}",
    lambda: f"sha256:{rand(HEX, 64)}  app-1.4.2.tar.gz",
    lambda: f"image: ghcr.io/org/app@sha256:{rand(HEX, 64)}",
    lambda: "data: " + base64.b64encode(R.choice([b"hello world", b"deploy finished ok",
                                                  b"{\"ok\": true}"])).decode(),
    lambda: f"version {R.randint(0, 9)}.{R.randint(0, 20)}.{R.randint(0, 99)} released",
    lambda: f"helm upgrade app chart --version v{R.randint(1, 3)}.{R.randint(0, 9)}.0-rc.1",
    lambda: f"/usr/local/lib/python3.11/site-packages/{R.choice(WORDS)}/__init__.py",
    lambda: f"C:\\Program Files\\{R.choice(WORDS)}\\bin\\run.exe",
    lambda: f"2026-11-25T{R.randint(0, 23):02}:{R.randint(0, 59):02}:{R.randint(0, 59):02}"
            f".{R.randint(0, 999):03}Z INFO {R.choice(WORDS)} ready",
    lambda: "password=${DB_PASSWORD}", lambda: "token: <your-token-here>",
    lambda: 'api_key = "xxx"', lambda: '"password": "********"',
    lambda: "secret: {{ .Values.secret }}", lambda: "PASSWORD=$DB_PASS",
    lambda: f"max_tokens: {R.randint(16, 4096)}", lambda: f"token_count={R.randint(1, 999)}",
    lambda: "passwordless login enabled for ops", lambda: "Secret rotated successfully",
    lambda: f"listening on localhost:{R.randint(1024, 65535)}",
    lambda: f"order {R.randint(10**15, 10**16 - 1)} shipped",
    lambda: f"epoch_ms={R.randint(1_700_000_000_000, 1_800_000_000_000)}",
    lambda: f"kubectl rollout status deploy/{R.choice(WORDS)} -n prod --timeout=300s",
    lambda: f"10:{R.randint(0, 59):02}:{R.randint(0, 59):02} job finished in "
            f"{R.randint(1, 300)}s",
    lambda: f"mac {':'.join(rand(HEX, 2) for _ in range(6))} up",
    lambda: "key: app.kubernetes.io/name", lambda: "auth: enabled",
    lambda: f"--token-file=/var/run/secrets/{R.choice(WORDS)}/token",
    lambda: f"build #{R.randint(100, 9999)} took {R.randint(1, 60)}m{R.randint(0, 59)}s",
    lambda: f"checksum: {rand(HEX, 64)}",
    lambda: f"pip install {R.choice(WORDS)}=={R.randint(0, 9)}.{R.randint(0, 30)}.{R.randint(0, 9)}",
    lambda: f"[REDACTED:password:{R.randint(1, 9)}] stays as it is",
]

# Plain words and numbers with colons that parse as IPv6 (a model's answer once lost
# "Face::add" to [REDACTED:ipv6:1]). Fixed strings, appended after the shuffle, so the
# generated entries above stay as they were.
COLON_NEGATIVES = [
    "use std::vector<int> here", "Note: add: the flag first", "at 12:30:45 the job ran",
    "call a::b then c::d", "magic number dead:beef:cafe", "Step 1:: install the agent",
    "Face::add(x) returns the new face", "Cafe::Bed is a class in the demo",
    "fe::ed and de::ad are not addresses", "see 10::20 for details", "Bad::Add() was renamed",
    "DEAD::BEEF marks freed memory", "time 1:2:3:4:5:6:7:8", "12:30:45:12:30:45:12:30",
    "Base::Feed::Add is deprecated", "Option A:: B", "the ratio 3::4 holds", "Be::Fade(in)",
    "add::fee, cafe::babe", "impl Deref for Face::Bad", "Abc::Def::Ace",
]


def main() -> None:
    entries = []
    for kind, templates in TEMPLATES.items():
        for i in range(48):
            value = GENERATORS[kind]()
            template = templates[i % len(templates)]
            text = template.format(v=value)
            entries.append({"text": text, "secrets": [{"type": kind, "value": value}],
                            "context": "planted"})
    for i in range(400):
        entries.append({"text": HARD_NEGATIVES[i % len(HARD_NEGATIVES)](), "secrets": [],
                        "context": "hard_negative"})
    R.shuffle(entries)
    entries += [{"text": text, "secrets": [], "context": "hard_negative"}
                for text in COLON_NEGATIVES]
    out = Path(__file__).with_name("corpus.jsonl")
    out.write_text("".join(json.dumps(e) + "\n" for e in entries))
    print(f"wrote {len(entries)} entries to {out}")


if __name__ == "__main__":
    main()
