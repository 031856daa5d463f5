"""The demo shop's fixed world: products, German names, devices, chat and email vocabulary."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Product:
    product_id: str
    sku: str
    name: str
    category: str
    brand: str
    price: float
    # Share of orders containing this product that come back (fashion is returned far more often).
    return_rate: float


def _products(category: str, return_rate: float, *items: tuple[str, str, str, float]) -> list[Product]:
    return [
        Product(f"P{sku[-4:]}", sku, name, category, brand, price, return_rate)
        for sku, name, brand, price in items
    ]


PRODUCTS: tuple[Product, ...] = (
    *_products(
        "Bekleidung",
        0.30,
        ("BK-1001", "Strickpullover Merino", "Nordwind", 79.95),
        ("BK-1002", "Jeans Slim Fit", "Elbufer", 59.99),
        ("BK-1003", "Regenjacke wasserdicht", "Nordwind", 129.00),
        ("BK-1004", "T-Shirt Bio-Baumwolle 3er-Pack", "Elbufer", 29.99),
        ("BK-1005", "Winterparka Daune", "Alpenglück", 249.00),
    ),
    *_products(
        "Schuhe",
        0.28,
        ("SH-2001", "Laufschuh Trail", "Laufwerk", 119.95),
        ("SH-2002", "Sneaker Leder weiß", "Elbufer", 89.90),
        ("SH-2003", "Winterstiefel gefüttert", "Alpenglück", 139.00),
    ),
    *_products(
        "Elektronik",
        0.08,
        ("EL-3001", "Bluetooth-Kopfhörer ANC", "Klangwerk", 149.00),
        ("EL-3002", "Smartwatch Fitness", "Pulsar", 199.00),
        ("EL-3003", "Powerbank 20000 mAh", "Pulsar", 34.99),
        ("EL-3004", "E-Book-Reader", "Lesezeit", 129.99),
        ("EL-3005", "Saugroboter", "Hausgeist", 349.00),
    ),
    *_products(
        "Haushalt",
        0.06,
        ("HH-4001", "Kaffeemühle elektrisch", "Bohnenglück", 49.90),
        ("HH-4002", "Pfannen-Set Edelstahl", "Kochkunst", 89.00),
        ("HH-4003", "Bettwäsche Satin 155x220", "Traumland", 59.95),
        ("HH-4004", "Duftkerzen-Set", "Traumland", 19.99),
    ),
    *_products(
        "Beauty",
        0.04,
        ("BE-5001", "Gesichtscreme Hyaluron", "Naturklar", 24.95),
        ("BE-5002", "Parfum Eau de Toilette 50 ml", "Maison Rhin", 54.00),
        ("BE-5003", "Naturkosmetik-Geschenkset", "Naturklar", 39.90),
    ),
    *_products(
        "Sport",
        0.10,
        ("SP-6001", "Yogamatte rutschfest", "Laufwerk", 34.95),
        ("SP-6002", "Kurzhantel-Set 20 kg", "Eisenhart", 69.00),
        ("SP-6003", "Fahrradhelm", "Pulsar", 79.90),
    ),
    *_products(
        "Spielzeug",
        0.05,
        ("SZ-7001", "Holzeisenbahn Starterset", "Kinderwerk", 44.99),
        ("SZ-7002", "Brettspiel Familienabend", "Spielraum", 29.95),
        ("SZ-7003", "Baukasten 500 Teile", "Kinderwerk", 59.00),
    ),
    *_products(
        "Bücher",
        0.03,
        ("BU-8001", "Kochbuch Regional", "Lesezeit", 26.00),
        ("BU-8002", "Krimi Taschenbuch", "Lesezeit", 12.99),
        ("BU-8003", "Reiseführer Ostsee", "Lesezeit", 18.95),
    ),
)

CATEGORIES: tuple[str, ...] = tuple(dict.fromkeys(p.category for p in PRODUCTS))
PRODUCTS_BY_CATEGORY: dict[str, tuple[Product, ...]] = {
    c: tuple(p for p in PRODUCTS if p.category == c) for c in CATEGORIES
}

FIRST_NAMES: tuple[str, ...] = (
    "Anna", "Lena", "Laura", "Julia", "Sarah", "Lisa", "Marie", "Sophie", "Hannah", "Katharina",
    "Sabine", "Petra", "Claudia", "Monika", "Jana", "Emma", "Mia", "Lea", "Jessica", "Nicole",
    "Lukas", "Jonas", "Leon", "Finn", "Paul", "Felix", "Maximilian", "Tim", "Jan", "Niklas",
    "Thomas", "Michael", "Andreas", "Stefan", "Markus", "Christian", "Tobias", "Florian", "Jürgen", "Uwe",
)  # fmt: skip
LAST_NAMES: tuple[str, ...] = (
    "Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Schulz", "Hoffmann",
    "Schäfer", "Koch", "Bauer", "Richter", "Klein", "Wolf", "Schröder", "Neumann", "Schwarz", "Zimmermann",
    "Braun", "Krüger", "Hofmann", "Hartmann", "Lange", "Schmitt", "Werner", "Schmitz", "Krause", "Meier",
    "Lehmann", "Schmid", "Schulze", "Maier", "Köhler", "Herrmann", "König", "Walter", "Mayer", "Huber",
)  # fmt: skip
EMAIL_DOMAINS: tuple[str, ...] = (
    "gmx.de", "web.de", "gmail.com", "t-online.de", "outlook.de", "yahoo.de", "posteo.de", "icloud.com",
)  # fmt: skip
# German mobile prefixes; ``phone`` formats vary on purpose so the platform has to normalise them.
MOBILE_PREFIXES: tuple[str, ...] = ("151", "152", "157", "160", "162", "170", "171", "172", "176", "179")


@dataclass(frozen=True, slots=True)
class DeviceKind:
    source: str  # context.source: web, ios, android
    user_agent: str
    library: str
    mobile: bool


DEVICE_KINDS: tuple[DeviceKind, ...] = (
    DeviceKind(
        "web",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0 Safari/537.36",
        "analytics.js",
        mobile=False,
    ),
    DeviceKind(
        "web",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.4 Safari/605.1.15",
        "analytics.js",
        mobile=False,
    ),
    DeviceKind(
        "web",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.4 Mobile/15E148 Safari/604.1",
        "analytics.js",
        mobile=True,
    ),
    DeviceKind(
        "web",
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0 Mobile Safari/537.36",
        "analytics.js",
        mobile=True,
    ),
    DeviceKind("ios", "DemoShop/5.3.1 (iPhone; iOS 17.4)", "analytics-ios", mobile=True),
    DeviceKind("android", "DemoShop/5.3.0 (Android 14; SM-S918B)", "analytics-android", mobile=True),
)
DEVICE_KIND_WEIGHTS: tuple[float, ...] = (0.30, 0.12, 0.20, 0.18, 0.11, 0.09)

SHOP_URL = "https://www.demo-shop.de"
REFERRERS: tuple[str, ...] = (
    "", "https://www.google.de/", "https://www.google.de/", "https://www.instagram.com/",
    "https://www.idealo.de/", "https://www.facebook.com/",
)  # fmt: skip
LOCALES: tuple[str, ...] = ("de-DE",) * 17 + ("de-AT", "de-CH", "en-GB")

CHAT_TOPICS: tuple[str, ...] = ("Produktberatung", "Versandkosten", "Gutschein", "Größenberatung", "Zahlung")
COMPLAINT_CATEGORIES: tuple[str, ...] = ("delivery", "product", "billing")
COMPLAINT_CATEGORY_WEIGHTS: tuple[float, ...] = (0.45, 0.35, 0.20)
COMPLAINT_TOPICS: dict[str, str] = {
    "delivery": "Lieferung verspätet",
    "product": "Artikel defekt",
    "billing": "Doppelte Abbuchung",
}
RESOLUTIONS: dict[str, tuple[str, ...]] = {
    "delivery": (
        "Sendung nachverfolgt und zugestellt",
        "Ersatzlieferung verschickt",
        "Versandkosten erstattet",
    ),
    "product": ("Ersatzartikel verschickt", "Kaufpreis erstattet", "Gutschrift erteilt"),
    "billing": ("Doppelbuchung storniert", "Betrag erstattet"),
}
CANCEL_REASONS: tuple[str, ...] = ("Kunde hat storniert", "Zahlung fehlgeschlagen", "Artikel nicht lieferbar")
RETURN_REASONS: tuple[str, ...] = (
    "Gefällt nicht",
    "Passt nicht",
    "Falscher Artikel geliefert",
    "Zu spät geliefert",
)
COUPONS: tuple[str, ...] = ("WILLKOMMEN10", "NEWSLETTER10", "TREUE15")

EMAIL_PROVIDER = "cleverreach"
NEWSLETTER_LIST = "newsletter-de"
LEGAL_TEXT_VERSION = "2024-02"
OLD_LEGAL_TEXT_VERSION = "2022-05"
