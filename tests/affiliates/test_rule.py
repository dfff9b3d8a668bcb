"""Which plan pays an anchor for a sale (``service.effective_plan``), without a database: the
precedence by examples, then for any set of plans against the rule written out by hand."""

import datetime as dt
import itertools

from hypothesis import given
from hypothesis import strategies as st

from originlive.affiliates.models import PlanKind, PlanScope
from originlive.affiliates.service import PlanFigures, best_offer, clash, effective_plan

T0 = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
SHOP, PRODUCT, OTHER = 1, 10, 11
ANCHOR, STRANGER = 100, 101
_ids = itertools.count(1)


def plan(
    *,
    kind: PlanKind = PlanKind.OPEN,
    scope: PlanScope = PlanScope.SHOP,
    rate_bp: int = 1000,
    products: frozenset[int] = frozenset(),
    named: frozenset[int] = frozenset(),
    members: frozenset[int] = frozenset({ANCHOR}),
    starts: float = 0,
    ends: float | None = None,
    shop_id: int = SHOP,
    plan_id: int | None = None,
) -> PlanFigures:
    """A plan's figures; times in days after T0."""
    return PlanFigures(
        plan_id=plan_id or next(_ids),
        shop_id=shop_id,
        kind=kind,
        scope=scope,
        rate_bp=rate_bp,
        starts_at=T0 + dt.timedelta(days=starts),
        ends_at=None if ends is None else T0 + dt.timedelta(days=ends),
        product_ids=products,
        anchor_ids=named,
        members=members,
    )


def paying(plans: list[PlanFigures], *, anchor_id: int = ANCHOR, at: float = 1) -> int | None:
    found = effective_plan(
        plans,
        anchor_id=anchor_id,
        product_id=PRODUCT,
        shop_id=SHOP,
        at=T0 + dt.timedelta(days=at),
    )
    return None if found is None else found[0]


def test_a_targeted_plan_beats_an_open_one_and_a_narrow_scope_a_wide_one() -> None:
    shop = plan(rate_bp=500)
    group = plan(scope=PlanScope.GROUP, products=frozenset({PRODUCT, OTHER}), rate_bp=700)
    product = plan(scope=PlanScope.PRODUCT, products=frozenset({PRODUCT}), rate_bp=900)
    deal = plan(kind=PlanKind.TARGETED, named=frozenset({ANCHOR}), rate_bp=300)
    assert paying([shop]) == shop.plan_id
    assert paying([shop, group]) == group.plan_id
    assert paying([product, group, shop]) == product.plan_id
    # The deal pays less, and a shop-wide deal at that: it is still the anchor's deal.
    assert paying([shop, group, product, deal]) == deal.plan_id
    found = effective_plan(
        [shop, group, product, deal],
        anchor_id=ANCHOR,
        product_id=PRODUCT,
        shop_id=SHOP,
        at=T0 + dt.timedelta(days=1),
    )
    assert found == (deal.plan_id, 300)


def test_only_joined_running_covering_plans_of_the_shop_offered_to_the_anchor_pay() -> None:
    assert paying([plan(members=frozenset())]) is None  # not joined
    assert paying([plan(starts=2)]) is None  # not yet
    assert paying([plan(ends=1)]) is None  # the end is not in the window
    assert paying([plan(ends=1.5)]) is not None
    assert paying([plan(scope=PlanScope.PRODUCT, products=frozenset({OTHER}))]) is None
    assert paying([plan(shop_id=2)]) is None
    # A targeted plan the anchor somehow joined but is no longer named by does not pay.
    assert paying([plan(kind=PlanKind.TARGETED, named=frozenset({STRANGER}))]) is None
    assert paying([plan()], anchor_id=STRANGER) is None


def test_the_best_offer_is_the_highest_rate_offered_whether_joined_or_not() -> None:
    shop = plan(rate_bp=1500, members=frozenset())
    deal = plan(kind=PlanKind.TARGETED, named=frozenset({ANCHOR}), rate_bp=300)
    other = plan(kind=PlanKind.TARGETED, named=frozenset({STRANGER}), rate_bp=5000)
    found = best_offer(
        [shop, deal, other], anchor_id=ANCHOR, product_id=PRODUCT, shop_id=SHOP, at=T0
    )
    assert found == (shop.plan_id, 1500)


def test_a_clash_needs_kind_scope_products_anchors_and_window_in_common() -> None:
    base = plan(ends=10)
    assert clash(base, plan(starts=5))
    assert not clash(base, plan(starts=10))  # starts as the other ends
    assert not clash(base, plan(kind=PlanKind.TARGETED, named=frozenset({ANCHOR})))
    assert not clash(base, plan(scope=PlanScope.PRODUCT, products=frozenset({PRODUCT})))
    one = plan(scope=PlanScope.GROUP, products=frozenset({PRODUCT}))
    assert clash(one, plan(scope=PlanScope.GROUP, products=frozenset({PRODUCT, OTHER})))
    assert not clash(one, plan(scope=PlanScope.GROUP, products=frozenset({OTHER})))
    deal = plan(kind=PlanKind.TARGETED, named=frozenset({ANCHOR}))
    assert clash(deal, plan(kind=PlanKind.TARGETED, named=frozenset({ANCHOR, STRANGER})))
    assert not clash(deal, plan(kind=PlanKind.TARGETED, named=frozenset({STRANGER})))
    assert not clash(base, plan(shop_id=2))


# Any plans at all


ANCHORS = st.frozensets(st.sampled_from([ANCHOR, STRANGER]))


@st.composite
def figures(draw: st.DrawFn, plan_id: int) -> PlanFigures:
    scope = draw(st.sampled_from(list(PlanScope)))
    kind = draw(st.sampled_from(list(PlanKind)))
    products = frozenset() if scope == PlanScope.SHOP else draw(
        st.frozensets(st.sampled_from([PRODUCT, OTHER]), min_size=1)
    )  # fmt: skip
    starts = draw(st.integers(0, 4))
    ends = draw(st.none() | st.integers(starts + 1, 6))
    return plan(
        plan_id=plan_id,
        kind=kind,
        scope=scope,
        rate_bp=draw(st.integers(0, 10_000)),
        products=products,
        named=draw(ANCHORS) if kind == PlanKind.TARGETED else frozenset(),
        members=draw(ANCHORS),
        starts=starts,
        ends=ends,
        shop_id=draw(st.sampled_from([SHOP, 2])),
    )


@st.composite
def plan_sets(draw: st.DrawFn) -> list[PlanFigures]:
    count = draw(st.integers(0, 8))
    return [draw(figures(plan_id)) for plan_id in range(1, count + 1)]


def _by_hand(plans: list[PlanFigures], anchor_id: int, at: dt.datetime) -> tuple[int, int] | None:
    """The rule as the module's docstring says it, step by step."""
    candidates = []
    for p in plans:
        if p.shop_id != SHOP or anchor_id not in p.members:
            continue
        if p.kind == PlanKind.TARGETED and anchor_id not in p.anchor_ids:
            continue
        if not (p.starts_at <= at and (p.ends_at is None or at < p.ends_at)):
            continue
        if p.scope != PlanScope.SHOP and PRODUCT not in p.product_ids:
            continue
        candidates.append(p)
    for kind in (PlanKind.TARGETED, PlanKind.OPEN):
        for scope in (PlanScope.PRODUCT, PlanScope.GROUP, PlanScope.SHOP):
            level = sorted((p for p in candidates if (p.kind, p.scope) == (kind, scope)),
                           key=lambda p: p.plan_id)  # fmt: skip
            if level:
                return level[0].plan_id, level[0].rate_bp
    return None


@given(plans=plan_sets(), anchor_id=st.sampled_from([ANCHOR, STRANGER]), day=st.integers(0, 7))
def test_the_rule_for_any_plans_is_the_rule_by_hand(
    plans: list[PlanFigures], anchor_id: int, day: int
) -> None:
    at = T0 + dt.timedelta(days=day, hours=12)
    asked = {"anchor_id": anchor_id, "product_id": PRODUCT, "shop_id": SHOP}
    found = effective_plan(plans, at=at, **asked)
    assert found == _by_hand(plans, anchor_id, at)
    assert effective_plan(list(reversed(plans)), at=at, **asked) == found
    offered = best_offer(plans, at=at, **asked)
    # Whatever pays is offered, and nothing offered pays more than the best offer.
    if found is not None:
        assert offered is not None and offered[1] >= found[1]
