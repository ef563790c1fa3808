"""Small files in each upstream format, a manifest naming them, and a local HTTP server that serves them
(with Range support, and on request a cut mid-body) for the fetcher tests."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import socket
import threading
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

OPTIONS = ["alpha", "beta", "gamma", "delta"]


def _mmlu_question(qid: int, pred: str | None, text_key: str, text: str | None) -> dict[str, Any]:
    return {"question_id": qid, "question": f"Question {qid}: which letter?", "options": OPTIONS,
            "answer": "B", "answer_index": 1, "category": "computer science", "src": "ori_mmlu-x",
            "pred": pred, text_key: text}


def mmlu_pro_files() -> dict[str, bytes]:
    """Model A as a plain JSON list; model B as a zip holding one JSON file (and a stray summary string)."""
    a = [_mmlu_question(71, "B", "response", "Thinking. The answer is (B)."),
         _mmlu_question(70, "C", "response", "The answer is (C)."),
         _mmlu_question(72, None, "response", "I cannot tell.")]
    b = [_mmlu_question(70, "B", "model_outputs", "The answer is (B)."), "total",
         _mmlu_question(71, "B", "model_outputs", "B")]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("model_outputs_B_5shots.json", json.dumps(b))
    return {"a_result.json": json.dumps(a).encode(), "model_outputs_B_5shots.zip": buf.getvalue()}


def routellm_files() -> dict[str, bytes]:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["prompt", "weak/model", "strong-model"])
    writer.writerow(["What is 2+2?\nA. 3\nB. 4\nAnswer:", "True", "True"])
    writer.writerow(['A "quoted"\nmulti-line prompt\nAnswer:', "False", "True"])
    writer.writerow(["What is 2+2?\nA. 3\nB. 4\nAnswer:", "True", "False"])     # a repeated prompt: one id
    return {"mmlu_anatomy.csv": out.getvalue().encode()}


def routerbench_files() -> dict[str, bytes]:
    models = ["cheap/m", "strong-m"]
    header = ["", "sample_id", "prompt", "eval_name", *models,
              *(f"{m}|model_response" for m in models), *(f"{m}|total_cost" for m in models),
              "oracle_model_to_route_to"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerow(["0", "arc.test.1", repr(["Pick A or B.\nA) x\nB) y"]), "arc", "1.0", "0.0",
                     "['A']", "['B is right']", "0.0001", "0.002", "cheap/m"])
    writer.writerow(["1", "arc.test.2", repr(["Second?", "ignored"]), "arc", "", "1.0",
                     "", "['B']", "", "0.003", "strong-m"])
    return {"arc_test.csv": out.getvalue().encode()}


def llmrouter_files() -> dict[str, bytes]:
    train = [{"question": "Q: first?", "scores": {"small": 0.0, "big": 1.0}},
             {"question": "Q: second?", "scores": {"small": 1.0, "big": 0.5}}]
    test = [{"question": "Q: third?", "scores": {"small": 1, "big": 1}}]
    return {"train.json": json.dumps(train).encode(), "test.json": json.dumps(test).encode()}


def gsm8k_files() -> dict[str, bytes]:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["prompt", "weak/model", "strong-model", "weak/model_response", "strong-model_response"])
    writer.writerow(["Tom has 3 apples and buys 4. How many?", "True", "True", "3 + 4 = 7\n#### 7", "He has 7."])
    writer.writerow(["A pen costs $2. What do 700 pens cost?", "False", "True", "2 * 700 = 1,300", "$1,400 in all."])
    writer.writerow(["Tom has 3 apples and buys 4. How many?", "False", "False", "a repeated prompt", "kept once"])
    test = [{"question": "Tom has 3 apples and buys 4. How many?", "answer": "3+4=<<3+4=7>>7\n#### 7"},
            {"question": "A pen costs $2. What do 700 pens cost?", "answer": "2*700=1400\n#### 1,400"}]
    return {"gsm8k_responses.csv": out.getvalue().encode(),
            "test.jsonl": "".join(json.dumps(t) + "\n" for t in test).encode()}


def mt_bench_files() -> dict[str, bytes]:
    questions = [{"question_id": 82, "category": "writing", "turns": ["Write a haiku.", "Now in French."]},
                 {"question_id": 81, "category": "coding", "turns": ["Reverse a list in Python.", "In C?"]}]
    judged = [(82, "weak/model", 1, 6, "Leaves fall"), (82, "strong-model", 1, 9, "Quiet light"),
              (82, "strong-model", 2, 3, "second turn: not converted"), (81, "weak/model", 1, 7, "xs[::-1]")]
    lines = [json.dumps({"question_id": q, "model": m, "turn": t, "score": sc, "judge": ["gpt-4", "single-v1"],
                         "user_prompt": f"[Question]\n...\n\n[The Start of Assistant's Answer]\n{a}\n"
                                        f"[The End of Assistant's Answer]"}) for q, m, t, sc, a in judged]
    return {"judgements.jsonl": ("\n".join(lines) + "\n").encode(),
            "question.jsonl": "".join(json.dumps(q) + "\n" for q in questions).encode()}


SETS = {  # name: (converter, files, pair, extra fields)
    "tiny_mmlu_pro": ("mmlu_pro", mmlu_pro_files, ("A", "B_5shots"),
                      {"responses_for": ["A"], "expect": {"prompts": 3, "models": 2}}),
    "tiny_routellm": ("routellm_mmlu", routellm_files, ("weak/model", "strong-model"), {}),
    "tiny_routerbench": ("routerbench", routerbench_files, ("cheap/m", "strong-m"), {}),
    "tiny_llmrouter": ("llmrouter", llmrouter_files, ("small", "big"), {}),
    "tiny_gsm8k": ("routellm_gsm8k", gsm8k_files, ("weak/model", "strong-model"), {}),
    "tiny_mt_bench": ("routellm_mt_bench", mt_bench_files, ("weak/model", "strong-model"), {}),
}
MODELS = {"a_result.json": "A", "model_outputs_B_5shots.zip": "B_5shots"}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Served:
    """What the server holds and what it saw."""

    files: dict[str, bytes] = field(default_factory=dict)      # URL path -> bytes
    cut: dict[str, int] = field(default_factory=dict)          # URL path -> number of responses to cut short
    ranges: bool = True                                        # honour Range requests
    requests: list[tuple[str, str | None]] = field(default_factory=list)   # (path, Range header)


def _handler(served: Served) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            rng = self.headers.get("Range")
            served.requests.append((self.path, rng))
            body = served.files.get(self.path)
            if body is None:
                self.send_error(404, "not here")
                return
            start = int(rng[len("bytes="):].split("-")[0]) if rng and served.ranges else 0
            if start >= len(body) and start:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206 if start else 200)
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            self.send_header("Content-Length", str(len(body) - start))
            self.end_headers()
            chunk = body[start:]
            if served.cut.get(self.path, 0) > 0:
                served.cut[self.path] -= 1
                self.wfile.write(chunk[: max(1, len(chunk) // 2)])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(chunk)
    return Handler


@contextmanager
def http_server(served: Served) -> Iterator[str]:
    """A local HTTP server in a thread; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(served))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def closed_port_url() -> str:
    """A URL on a local port nothing listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def write_manifest(path: Path, base_url: str, served: Served, *, record: bool = True,
                   corrupt: str | None = None) -> Path:
    """A manifest of the tiny sets, served by ``served`` under ``base_url``. ``record=False``: no digests;
    ``corrupt``: a file name whose served bytes differ from the recorded digest."""
    sets = {}
    for name, (converter, make, (cheap, strong), extra) in SETS.items():
        files = []
        for fname, data in make().items():
            served.files[f"/{name}/{fname}"] = data + (b" " if fname == corrupt else b"")
            entry = {"name": fname, "url": f"{base_url}/{name}/{fname}", "size": len(data),
                     "sha256": sha256(data) if record else None}
            if fname in MODELS:
                entry["model"] = MODELS[fname]
            files.append(entry)
        sets[name] = {"title": f"{name} fixture", "license": "MIT", "publisher": "tests", "homepage": base_url,
                      "converter": converter, "pair": {"cheap": cheap, "strong": strong}, "score": "0/1",
                      "files": files, **extra}
    path.write_text(json.dumps({"format": 1, "sets": sets}), encoding="utf-8")
    return path
