#!/usr/bin/env python3
"""Drives a running `transformer-cli serve` with the official `openai` Python client and checks it.

    openai_client_check.py --base-url http://127.0.0.1:PORT/v1 --cli PATH --model GGUF

Checks (each prints one line; any failure exits 1):
  1. non-streamed greedy chat text == `transformer-cli generate --chat` greedy text (same prompt, same token budget)
  2. streamed text == non-streamed text, SSE chunks parsed by the client, finish_reason and usage present
  3. 8 concurrent streams (different prompts) each == its own sequential non-streamed result
  4. stop sequences: the text ends right before the stop string, finish_reason == "stop"
  5. /v1/completions greedy == `transformer-cli generate -p` greedy text (without the echoed prompt)
  6. error handling through the client: n=2 and an empty messages list raise BadRequestError (400)
"""
import argparse
import concurrent.futures
import json
import subprocess
import sys

import openai

PROMPTS = [
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "List three primary colors.",
    "What is 12 times 12?",
    "Name a famous physicist.",
    "Why is the sky blue?",
    "Give me a synonym for happy.",
    "Translate 'good morning' to Spanish.",
]
MAX_TOKENS = 48
failures = 0


def check(ok, label, detail=""):
    global failures
    print(("PASS " if ok else "FAIL ") + label + ("" if ok else f"\n     {detail}"), flush=True)
    failures += 0 if ok else 1


def chat(client, prompt, **kw):
    r = client.chat.completions.create(model="smollm2", messages=[{"role": "user", "content": prompt}],
                                       temperature=0, max_tokens=MAX_TOKENS, **kw)
    return r.choices[0].message.content, r.choices[0].finish_reason, r.usage


def chat_stream(client, prompt, **kw):
    stream = client.chat.completions.create(model="smollm2", messages=[{"role": "user", "content": prompt}],
                                            temperature=0, max_tokens=MAX_TOKENS, stream=True,
                                            stream_options={"include_usage": True}, **kw)
    text, finish, usage = "", None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
    return text, finish, usage


def cli_generate(cli, model, args):
    out = subprocess.run([cli, "generate", "--model", model, "-n", str(MAX_TOKENS), "--json", *args],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout)["text"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--cli", required=True)
    ap.add_argument("--model", required=True)
    a = ap.parse_args()
    client = openai.OpenAI(base_url=a.base_url, api_key="none", max_retries=0, timeout=600)

    # 1. Non-streamed greedy == CLI greedy.
    text, finish, usage = chat(client, PROMPTS[0])
    ref = cli_generate(a.cli, a.model, ["--chat", "-p", PROMPTS[0]])
    check(text == ref, "non-streamed greedy chat == transformer-cli generate --chat", f"server {text!r}\n     cli    {ref!r}")
    check(finish in ("stop", "length") and usage.prompt_tokens > 0 and usage.completion_tokens > 0,
          f"finish_reason {finish!r} and usage {usage.prompt_tokens}+{usage.completion_tokens}")

    # 2. Streamed == non-streamed.
    s_text, s_finish, s_usage = chat_stream(client, PROMPTS[0])
    check(s_text == text and s_finish == finish, "streamed == non-streamed", f"{s_text!r} vs {text!r}")
    check(s_usage is not None and s_usage.completion_tokens == usage.completion_tokens, "stream_options.include_usage")

    # 3. 8 concurrent streams each == its sequential result.
    sequential = [chat(client, p)[0] for p in PROMPTS]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        concurrent_texts = list(pool.map(lambda p: chat_stream(client, p)[0], PROMPTS))
    for i, (c, s) in enumerate(zip(concurrent_texts, sequential)):
        check(c == s, f"concurrent stream {i} == sequential", f"{c!r} vs {s!r}")

    # 4. Stop sequences (a word from the middle of the reply, and a list).
    words = text.split()
    stop = words[len(words) // 2] if len(words) > 2 else text[len(text) // 2:]
    expected = text[:text.index(stop)]
    for kw in [{"stop": stop}, {"stop": ["zzzz-never", stop]}]:
        t, f, _ = chat(client, PROMPTS[0], **kw)
        check(t == expected and f == "stop", f"stop {kw['stop']!r} (non-streamed)", f"{t!r} vs {expected!r}, {f}")
        t, f, _ = chat_stream(client, PROMPTS[0], **kw)
        check(t == expected and f == "stop", f"stop {kw['stop']!r} (streamed)", f"{t!r} vs {expected!r}, {f}")

    # 5. Completions endpoint.
    prompt = "Once upon a time"
    r = client.completions.create(model="smollm2", prompt=prompt, temperature=0, max_tokens=MAX_TOKENS)
    ref = cli_generate(a.cli, a.model, ["-p", prompt])
    check(r.choices[0].text == ref, "/v1/completions greedy == transformer-cli generate -p", f"{r.choices[0].text!r} vs {ref!r}")

    # 6. Errors reach the client as OpenAI errors.
    for label, kw in [("n=2", {"messages": [{"role": "user", "content": "hi"}], "n": 2}), ("empty messages", {"messages": []})]:
        try:
            client.chat.completions.create(model="smollm2", max_tokens=4, **kw)
            check(False, f"{label} → 400", "no error raised")
        except openai.BadRequestError as e:
            check(e.status_code == 400 and isinstance(e.body, dict) and "message" in e.body, f"{label} → 400 BadRequestError")

    print(f"{failures} failure(s)")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
