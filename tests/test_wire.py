"""Token counts and loopback detection, read one way for streamed calls, warm-ups and every server family."""

from __future__ import annotations

from fastcode.models.wire import TokenCounts, is_loopback, merge_token_counts


def test_openai_and_vllm_usage() -> None:
    usage = {"prompt_tokens": 100, "completion_tokens": 7, "prompt_tokens_details": {"cached_tokens": 64}}
    assert merge_token_counts(TokenCounts(), usage, {}) == TokenCounts(100, 64, 7)


def test_absent_cached_tokens_mean_zero() -> None:
    usage = {"prompt_tokens": 10, "completion_tokens": 2, "prompt_tokens_details": None}
    assert merge_token_counts(TokenCounts(), usage, {}) == TokenCounts(10, 0, 2)


def test_llama_cpp_timings() -> None:
    extra = {"timings": {"cache_n": 900, "prompt_n": 40, "predicted_n": 12}}
    assert merge_token_counts(TokenCounts(), None, extra) == TokenCounts(940, 900, 12)


def test_the_server_prefill_from_llama_cpp_timings_and_vllm_metrics() -> None:
    llama = {"timings": {"cache_n": 0, "prompt_n": 40, "prompt_ms": 12.5}}
    assert merge_token_counts(TokenCounts(), None, llama).prefill_ms == 12.5
    vllm = {"metrics": {"time_to_first_token_ms": 85.2, "queue_time_ms": 12.3, "generation_time_ms": None}}
    usage = {"prompt_tokens": 42, "completion_tokens": 128}
    assert merge_token_counts(TokenCounts(), usage, vllm) == TokenCounts(42, 0, 128, 85.2)


def test_a_missing_or_garbled_server_prefill_keeps_what_was_known() -> None:
    known = TokenCounts(10, 0, 2, 30.0)
    for garbage in (None, float("nan"), -1, 1e12, "85", True, [85]):
        assert merge_token_counts(known, None, {"metrics": {"time_to_first_token_ms": garbage}}) == known
        assert merge_token_counts(known, None, {"timings": {"prompt_ms": garbage}}) == known
    for metrics in (None, "fast", [1], {}):  # vLLM sends `metrics: null` for n > 1
        assert merge_token_counts(known, None, {"metrics": metrics}) == known


def test_groq_usage_and_later_chunks_refine_earlier_ones() -> None:
    first = merge_token_counts(TokenCounts(), {"prompt_tokens": 5, "completion_tokens": 1}, {})
    groq = {"x_groq": {"usage": {"prompt_tokens": 50, "completion_tokens": 3,
                                 "prompt_tokens_details": {"cached_tokens": 32}}}}  # fmt: skip
    assert merge_token_counts(first, None, groq) == TokenCounts(50, 32, 3)


def test_loopback() -> None:
    assert is_loopback("http://127.0.0.1:8080/v1") and is_loopback("http://localhost/v1")
    assert is_loopback("http://[::1]:9/v1")
    assert not is_loopback("https://api.openai.com/v1")
    assert not is_loopback("http://localhost.example.com/v1")  # a name that merely starts like one
