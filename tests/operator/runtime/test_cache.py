"""The rules of an informer-style cache, and when kopf's listings are over."""

from __future__ import annotations

import asyncio

from stepflow.operator.runtime.cache import Listings, Relists, newer, replaced


def obj(version: str | None, uid: str = "") -> dict:
    meta = {"uid": uid} if uid else {}
    if version is not None:
        meta["resourceVersion"] = version
    return {"metadata": meta}


def test_the_cache_never_goes_backwards_and_an_unknown_version_counts_as_newer():
    assert newer(obj("7"), None)
    assert newer(obj("8"), obj("7"))
    assert not newer(obj("7"), obj("7"))  # the echo of our own write
    assert not newer(obj("6"), obj("7"))
    assert newer(obj(None), obj("7")) and newer(obj("7"), obj(None))


def test_a_deletion_drops_only_the_object_it_names():
    assert not replaced(obj("1", "a"), "a")
    assert replaced(obj("1", "b"), "a")  # a newer object of the name is cached
    assert not replaced(obj("1", "b"), "")  # the deletion says no uid: it goes
    assert not replaced(None, "a") and not replaced(obj("1"), "a")


def test_a_listing_leaves_what_it_did_not_show_and_each_is_judged_once():
    relists, cached = Relists(), {"a", "b", "c"}
    assert relists.listed("things", "a", lambda: cached)  # the first object starts a listing
    cached.add("d")  # added after the listing began: not a suspect
    assert not relists.listed("things", "b", lambda: cached)
    assert relists.end("things") == {"c"}
    assert relists.end("things") == set()
    assert relists.listed("things", "a", lambda: cached)  # the next listing starts afresh


def test_a_listing_is_over_once_quiet_per_kind_and_the_cache_then_is_warm():
    ended: list[tuple[str, float]] = []

    async def main() -> tuple[float, float]:
        loop = asyncio.get_running_loop()
        listings = Listings(over=lambda kind: ended.append((kind, loop.time())), quiet=0.2)
        began = loop.time()
        listings.note("jobs")
        for _ in range(4):  # a listing that goes on for 0.4 s
            await asyncio.sleep(0.1)
            listings.note("workflows")
        await listings.settled(poll=0.05)
        warm = loop.time()
        await asyncio.sleep(0.3)
        listings.cancel()
        return began, warm

    began, warm = asyncio.run(main())
    assert [kind for kind, _ in ended] == ["jobs", "workflows"]
    at = dict(ended)
    assert at["jobs"] - began < at["workflows"] - began  # each kind on its own timer
    assert at["workflows"] - began >= 0.4 + 0.2 - 0.05  # not over while objects still come
    assert warm - began >= 0.4 + 0.2 - 0.05


def test_a_cancelled_listing_never_ends():
    ended: list[str] = []

    async def main() -> None:
        listings = Listings(over=ended.append, quiet=0.05)
        listings.note("jobs")
        listings.cancel()
        await asyncio.sleep(0.2)

    asyncio.run(main())
    assert ended == []
