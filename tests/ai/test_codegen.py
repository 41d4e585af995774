import pytest

from sloth_runner.ai import codegen


@pytest.mark.parametrize("text, code", [
    ("Here:\n```bash\necho hi\n```\nDone.", "echo hi"),
    ("```\nprint(1)\n```", "print(1)"),
    ("```python\nx = 1\n", "x = 1"),          # cut off at max_tokens: unterminated fence
    ("just code", "just code"),
])
def test_extract_code(text, code):
    assert codegen.extract_code(text) == code


@pytest.mark.parametrize("lang, good, bad, words", [
    ("bash", "for i in 1 2; do echo $i; done", "for i in; do echo", "syntax error"),
    ("python", "def f():\n    return 1", "def f(:\n", "line 1"),
    ("lua", "local x = 1 return x", "local = 1", "<name> expected near '='"),
    ("json", '{"a": [1, 2]}', '{"a": [1, 2}', "line 1"),
    ("yaml", "a: [1, 2]\nb: c", "a: [1, 2\nb: c", "flow sequence"),
    ("dockerfile", "ARG V=1\nFROM alpine:3\nRUN apk add \\\n  curl\nCMD [\"sh\"]",
     "RUN echo hi\nFROM alpine", "before the first FROM"),
    ("dockerfile", "FROM a", "FROM a\nBOGUS x", "unknown instruction 'BOGUS'"),
])
def test_checkers(lang, good, bad, words):
    check = codegen.CHECKERS[lang]
    assert check(good) is None
    problem = check(bad)
    assert problem and words in problem


def test_generate_code_reasks_with_the_checker_error(service, server):
    server.play("text:```bash\nif then fi\n```", "text:```bash\necho backup\n```")
    result = service.generate_code({"language": "bash",
                                    "description": "Script to backup PostgreSQL database",
                                    "parameters": {"database_name": "myapp_db",
                                                   "backup_location": "/backups/"}})
    assert result["valid"] is True and result["attempts"] == 2
    assert result["code"] == "echo backup" and result["errors"] == []
    first, second = server.requests
    prompt = first["body"]["messages"][-1]["content"]
    assert "database_name: myapp_db" in prompt and "backup_location: /backups/" in prompt
    fix = second["body"]["messages"][-1]["content"]
    assert "not valid bash" in fix and "syntax error" in fix
    assert [c["operation"] for c in service.usage().logs(5)] == ["generate_code"] * 2


def test_generate_code_reports_invalid_after_max_attempts(service, server):
    server.play("text:def f(:", "text:def g(:")
    result = service.generate_code({"language": "python", "description": "x", "max_attempts": 2})
    assert result["valid"] is False and result["attempts"] == 2
    assert "line 1" in result["errors"][0]


def test_unknown_language_is_unknown_validity(service, server):
    server.play("text:```go\npackage main\n```")
    result = service.generate_code({"language": "go", "description": "x"})
    assert result["valid"] is None and result["code"] == "package main"


def test_json_grammar_accepts_json_and_bounds_it():
    # The grammar is compiled by llama.cpp, which aborts the process on a malformed one:
    # compile it in a child process first, and check what it accepts there.
    import subprocess
    import sys
    import textwrap

    probe = textwrap.dedent('''
        import llama_cpp
        from sloth_runner.ai.codegen import JSON_GRAMMAR, json_grammar
        llama_cpp.LlamaGrammar.from_string(JSON_GRAMMAR, verbose=False)
        llama_cpp.LlamaGrammar.from_string(json_grammar(depth=1, members=2), verbose=False)
        print("compiled")
    ''')
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=120)
    assert proc.stdout.strip() == "compiled", proc.stderr
    small = codegen.json_grammar(depth=2, members=3, string_chars=5)
    assert 'obj2 ::= "{" ws (string ws ":" ws scalar ws ("," ws string ws ":" ws scalar ws)' \
           '{0,2})? "}"' in small
    assert "{0,5}" in small and "obj3" not in small


def test_json_on_the_local_model_is_valid():
    from tests.ai.conftest import make_service

    local = make_service({"provider": "local", "retry_attempts": 0})
    for description in ("a config for a web service with a port and a list of hosts",
                        "feature flags for a mobile app"):
        result = local.generate_code({"language": "json", "description": description,
                                      "temperature": 0})  # greedy: the same answer every run
        assert result["valid"] is True and result["errors"] == [], result
        assert codegen.CHECKERS["json"](result["code"]) is None


@pytest.mark.parametrize("text, code", [
    # the shapes small models produce
    ("echo hi\n```", "echo hi"),                                   # a closing fence only
    ("echo hi\n```\n", "echo hi"),
    ("echo hi```", "echo hi"),                                     # glued to the last line
    ("```bash\necho hi```", "echo hi"),
    ("```bash\necho hi\n```\n```", "echo hi"),                     # a stray fence after
    ("```bash\necho hi\n``` \nThis prints hi.", "echo hi"),        # text after, fence + space
    ("Sure!\n\n```sh\nset -e\necho hi\n```\n\nRun it with bash.", "set -e\necho hi"),
    ("```python3\nprint('a')\n", "print('a')"),                     # unterminated, language tag
    ("```\n```bash\necho hi\n```", "echo hi"),                     # an empty block first
    ("```bash echo hi```", "echo hi"),                             # all on one line
    ("```echo hi```", "echo hi"),
    ("~~~python\nx = 1\n~~~", "x = 1"),
    ("  ```bash\n  echo hi\n    x\n  ```", "echo hi\n  x"),          # an indented fence
    ("```", ""),
])
def test_extract_code_from_the_answers_small_models_give(text, code):
    assert codegen.extract_code(text) == code
    assert "```" not in codegen.extract_code(text)
