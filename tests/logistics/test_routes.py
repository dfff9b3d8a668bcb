"""The route chooser (``service.choose_route``) on region paths as the real tree gives them."""

import pytest

from originlive.errors import Conflict
from originlive.logistics.models import NodeKind
from originlive.logistics.service import Node, choose_route

# 陕西 > 咸阳 > 武功县 > 武功镇 > 武塔村, and 云南 > 昆明 > 五华区 for a shop elsewhere.
WUGONG = ["610000", "610400", "610431"]
WUTA = [*WUGONG, "610431102", "610431102200"]
JISHAN = [*WUGONG, "610431102", "610431102201"]
PUJI = [*WUGONG, "610431001"]
WUHUA = ["530000", "530100", "530102"]

HUB = Node(1, NodeKind.COUNTY_HUB, "610431", None)
STATION = Node(2, NodeKind.TOWNSHIP_STATION, "610431102", 1)
POINT = Node(3, NodeKind.VILLAGE_POINT, "610431102200", 2)
KUNMING_HUB = Node(4, NodeKind.COUNTY_HUB, "530102", None)
NETWORK = [HUB, STATION, POINT, KUNMING_HUB]


def test_to_the_point_of_the_buyers_village() -> None:
    assert choose_route(NETWORK, shop_path=WUGONG, buyer_path=WUTA) == [1, 2, 3]


def test_a_village_without_a_point_is_served_by_its_township_station() -> None:
    assert choose_route(NETWORK, shop_path=WUGONG, buyer_path=JISHAN) == [1, 2]


def test_a_township_without_a_station_is_served_by_the_county_hub() -> None:
    assert choose_route(NETWORK, shop_path=WUGONG, buyer_path=PUJI) == [1]


def test_from_a_shop_in_another_county_it_starts_at_that_countys_hub() -> None:
    assert choose_route(NETWORK, shop_path=WUHUA, buyer_path=WUTA) == [4, 1, 2, 3]


def test_a_shop_with_no_hub_nearby_hands_it_to_the_buyers_hub() -> None:
    assert choose_route([HUB, STATION, POINT], shop_path=WUHUA, buyer_path=WUTA) == [1, 2, 3]


def test_where_no_node_serves_the_buyer_a_carrier_must() -> None:
    with pytest.raises(Conflict, match="carrier"):
        choose_route([KUNMING_HUB], shop_path=WUHUA, buyer_path=WUTA)


def test_a_point_is_chosen_over_a_station_at_the_same_region() -> None:
    both = [HUB, Node(5, NodeKind.TOWNSHIP_STATION, "610431102200", 1), POINT]
    assert choose_route(both, shop_path=WUGONG, buyer_path=WUTA)[-1] == 3
