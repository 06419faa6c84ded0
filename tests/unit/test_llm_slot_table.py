"""Slot choice and prefix matching (runtime/llm/slot_table.py): pure bookkeeping, no engine."""
from __future__ import annotations

from runtime.llm.slot_table import SlotTable

P = list(range(100, 140))  # 40 tokens


def test_new_sequences_take_the_free_slot_that_widens_the_decoded_range_least():
    table = SlotTable(8)
    assert [table.claim([i]).slot for i in range(3)] == [0, 1, 2]
    table.release(1, [1])
    assert table.claim([9]).slot == 1  # the hole inside the running range costs no decoded row
    table.release(0, [0])
    assert table.running_range() == (1, 3)
    # slots 0 and 3 widen it by one row each, any other by more: the one unused longer (3) is taken
    assert table.claim([8]).slot == 3
    assert table.available() == 5


def test_with_nothing_running_the_least_recently_used_slot_is_evicted():
    table = SlotTable(4)
    used = []
    for i in range(6):  # one request at a time: each evicts the oldest cache, not slot 0's every time
        used.append(table.claim([i]).slot)
        table.release(used[-1], [i])
    assert used == [0, 1, 2, 3, 0, 1]
    assert table.running_range() == (0, 0)


def test_a_prefix_is_reused_in_whole_blocks_and_never_the_last_token():
    table = SlotTable(4, block=16)
    first = table.claim(P)
    table.release(first.slot, P + [7, 8])
    claim = table.claim(P[:35] + [1, 2])
    assert (claim.slot, claim.reused, claim.source, claim.copy_needed) == (first.slot, 32, first.slot, False)
    exact = SlotTable(4, block=16)
    exact.release(exact.claim(P[:32]).slot, P[:32])
    assert exact.claim(P[:32]).reused == 16  # 32 cached, but the prompt's last token must run


def test_a_running_sequence_is_a_source_to_copy_from():
    table = SlotTable(4, block=16)
    running = table.claim(P)
    claim = table.claim(P + [5])
    assert claim.slot != running.slot and claim.source == running.slot and claim.copy_needed
    assert claim.reused == 32


def test_short_or_different_prompts_reuse_nothing_and_stats_count():
    table = SlotTable(4, block=16)
    table.release(table.claim(P).slot, P)
    assert table.claim(P + [1]).reused == 32
    assert table.claim(P[:10]).reused == 0
    assert table.claim([1] + P).reused == 0
    assert (table.stats.queries, table.stats.hits, table.stats.reused_tokens) == (4, 1, 32)


def test_an_idle_source_far_from_the_running_rows_is_copied_next_to_them():
    table = SlotTable(8, block=16)
    claims = [table.claim([i]) for i in range(6)]
    table.release(claims[5].slot, P)  # slot 5 caches P
    for c in claims[1:5]:
        table.release(c.slot, [c.slot])
    claim = table.claim(P + [1])  # slot 0 runs: slot 5 in place would decode rows 0..5
    assert claim.slot == 1 and claim.source == 5 and claim.reused == 32 and claim.copy_needed


def test_with_nothing_running_an_idle_source_is_reused_in_place_wherever_it_is():
    table = SlotTable(8, block=16)
    claims = [table.claim([i]) for i in range(6)]
    table.release(claims[5].slot, P)
    for c in claims[:5]:
        table.release(c.slot, [c.slot])
    claim = table.claim(P + [1])  # the decode step is row 5 alone
    assert (claim.slot, claim.source, claim.reused, claim.copy_needed) == (5, 5, 32, False)


def test_fork_slots_copy_the_source_tokens():
    table = SlotTable(4)
    first = table.claim(P)
    fork = table.claim_copy(first.slot)
    assert fork != first.slot and list(table.cached[fork]) == P and table.available() == 2
