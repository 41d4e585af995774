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


def test_generate_code_reports_invalid_after_max_attempts(service, server):
    server.play("text:def f(:", "text:def g(:")
    result = service.generate_code({"language": "python", "description": "x", "max_attempts": 2})
    assert result["valid"] is False and result["attempts"] == 2
    assert "line 1" in result["errors"][0]


def test_unknown_language_is_unknown_validity(service, server):
    server.play("text:```go\npackage main\n```")
    result = service.generate_code({"language": "go", "description": "x"})
    assert result["valid"] is None and result["code"] == "package main"
