from services.ingest.dedup import MessageIdWindow


def test_second_claim_in_window_is_a_duplicate():
    window = MessageIdWindow(60, 1000)
    assert window.claim("m", now=0)
    assert not window.claim("m", now=30)


def test_claim_after_window_is_new_again():
    window = MessageIdWindow(60, 1000)
    window.claim("m", now=0)
    assert window.claim("m", now=61)


def test_release_lets_a_retry_through():
    window = MessageIdWindow(60, 1000)
    window.claim("m", now=0)
    window.release(["m"])
    assert window.claim("m", now=1)


def test_oldest_forgotten_beyond_capacity():
    window = MessageIdWindow(3600, 1000)
    for i in range(1001):
        window.claim(f"m{i}", now=i)
    assert len(window) == 1000
    assert window.claim("m0", now=2000)
    assert not window.claim("m1000", now=2000)


def test_preload_keeps_only_ids_inside_window():
    window = MessageIdWindow(100, 1000)
    assert window.preload([("old", 0.0), ("recent", 950.0)], now=1000) == 1
    assert not window.claim("recent", now=1000)
    assert window.claim("old", now=1000)


def test_zero_window_disables_dedup():
    window = MessageIdWindow(0, 1000)
    assert window.claim("m", 0) and window.claim("m", 0)
