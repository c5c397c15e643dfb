"""Which partners a round asks (`fraction_train`): seeded by names and round, never by node ids."""

from __future__ import annotations

from collections import Counter

import pytest

from fedcredit.server.sampling import round_sample

NAMES = [f"lender-{i:03d}" for i in range(100)]


def _nodes(offset: int) -> dict[int, str]:
    return {offset + 7 * i: name for i, name in enumerate(reversed(NAMES))}


def test_a_round_asks_the_stated_share_and_every_partner_when_it_is_one() -> None:
    nodes = _nodes(1000)
    assert len(round_sample(nodes, 0.1, seed=0, server_round=1)) == 10
    assert len(round_sample(nodes, 0.101, seed=0, server_round=1)) == 11          # ceil
    assert sorted(round_sample(nodes, 1.0, seed=0, server_round=1)) == sorted(nodes)
    assert len(round_sample({1: "a", 2: "b", 3: "c"}, 0.1, seed=0, server_round=1, minimum=2)) == 2


def test_the_same_seed_and_round_ask_the_same_partners_whatever_their_node_ids() -> None:
    first, second = _nodes(1000), _nodes(55_555)
    for rnd in (1, 2, 9):
        names_1 = [first[n] for n in round_sample(first, 0.2, seed=3, server_round=rnd)]
        names_2 = [second[n] for n in round_sample(second, 0.2, seed=3, server_round=rnd)]
        assert names_1 == names_2
    rounds = {tuple(round_sample(first, 0.2, seed=3, server_round=r)) for r in range(1, 11)}
    assert len(rounds) == 10                                                       # rounds differ
    assert round_sample(first, 0.2, seed=3, server_round=1) != round_sample(first, 0.2, seed=4, server_round=1)


def test_over_many_rounds_every_partner_is_asked_about_its_share() -> None:
    nodes = _nodes(0)
    asked = Counter(n for r in range(1, 501) for n in round_sample(nodes, 0.1, seed=0, server_round=r))
    assert set(asked) == set(nodes)
    assert all(20 <= c <= 85 for c in asked.values())        # 50 expected; binomial sd ≈ 6.7


@pytest.mark.parametrize("fraction", [0.0, 1.5, -0.1])
def test_a_share_outside_zero_to_one_is_refused(tmp_path, fraction: float) -> None:
    from fedcredit.credit.errors import InputError
    from fedcredit.credit.scenario import load_scenario
    from tests.conftest import make_partner_frame, write_scenario

    path = write_scenario(tmp_path, {"a": make_partner_frame(300, 1), "b": make_partner_frame(300, 2)},
                          federation={"fraction_train": fraction})
    with pytest.raises(InputError, match=r"\[federation\]: field 'fraction_train': must be a share in \(0, 1\]"):
        load_scenario(path)


def test_partner_level_dp_refuses_sampling(tmp_path) -> None:
    from fedcredit.credit.errors import InputError
    from fedcredit.credit.scenario import load_scenario
    from tests.conftest import make_partner_frame, write_scenario

    path = write_scenario(tmp_path, {"a": make_partner_frame(300, 1), "b": make_partner_frame(300, 2)},
                          federation={"fraction_train": 0.5}, privacy={"mode": "client"})
    with pytest.raises(InputError, match="field 'fraction_train': partner-level DP"):
        load_scenario(path)
