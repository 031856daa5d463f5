"""The web shop and apps: visits that start anonymous, logins, carts, checkouts and orders."""

from __future__ import annotations

from typing import Any

from services.demo import orders
from services.demo.catalogue import (
    CANCEL_REASONS,
    COUPONS,
    PRODUCTS,
    PRODUCTS_BY_CATEGORY,
    REFERRERS,
    RETURN_REASONS,
    Product,
)
from services.demo.conversations import ChatDesk
from services.demo.email_tool import EmailTool
from services.demo.messages import device_context, identify, page, track
from services.demo.orders import CartItem, PlacedOrder
from services.demo.population import Device, Newsletter, Person
from services.demo.seasonality import DAY, HOUR, day_factor, local_day, next_active
from services.demo.simulation import Simulation, Trigger

_CHECKOUT_COMPLETED = 0.8
_GUEST_RETURNS = 0.65
_CANCELLED = 0.03
_COMPLAINT = 0.05
_DELIVERY_QUESTION = 0.06
_CHAT_DURING_VISIT = 0.04
_LANDINGS = (("Startseite", "/"), ("Kategorie", "/kategorie"), ("Suche", "/suche"))


class Shop:
    def __init__(self, sim: Simulation, chat: ChatDesk, email: EmailTool) -> None:
        self.sim = sim
        self.chat = chat
        self.email = email
        sim.handlers[Trigger.VISIT] = self._visit
        sim.handlers[Trigger.EMAIL_VISIT] = self._visit_from_email

    def welcome(self, person: Person) -> None:
        """Schedule the person's first visit of the window."""
        sim = self.sim
        sim.schedule(next_active(sim.rng, sim.start, person.visit_rate), Trigger.VISIT, person)

    def _visit(self, t: float, person: Person | None, _arg: Any) -> None:
        assert person is not None
        rng = self.sim.rng
        ended = self._session(t, person, None, 1.0)
        if person.customer_id is None and rng.random() > _GUEST_RETURNS:
            return  # most guests drift away after a few visits
        # Someone still waiting for a complaint to be resolved comes back far less often (churn risk).
        rate = person.visit_rate * (0.4 if person.unhappy_until > ended else 1.0)
        self.sim.schedule(next_active(rng, ended, rate), Trigger.VISIT, person)

    def _visit_from_email(self, t: float, person: Person | None, campaign_id: Any) -> None:
        assert person is not None
        self._session(t, person, str(campaign_id), 1.8)

    def _session(self, t: float, person: Person, campaign_id: str | None, buy_boost: float) -> float:
        """One visit; returns when it ended."""
        sim, rng = self.sim, self.sim.rng
        device = self._device(person, prefer_mobile=campaign_id is not None)
        context = device_context(device)
        anonymous_id = device.anonymous_id
        user_id = person.customer_id if device.logged_in and rng.random() < 0.85 else None
        # Peak days convert better, not only bring more visits: the deals are real.
        conversion = person.buy_propensity * buy_boost * day_factor(local_day(t)) ** 0.3
        buys = rng.random() < conversion

        if campaign_id is not None:
            utm = f"utm_source=email&utm_campaign={campaign_id}"
            if campaign_id.startswith("flow-cart"):
                landing = ("Warenkorb", f"/warenkorb?{utm}")
            else:
                landing = ("Aktion", f"/aktion/{campaign_id.split('-', 2)[-1]}?{utm}")
            referrer = ""
        else:
            landing = rng.choice(_LANDINGS)
            referrer = rng.choice(REFERRERS)
        sim.emit(t, page(landing[0], landing[1], referrer, device, context, user_id))
        if user_id is not None and rng.random() < 0.3:
            # Shops re-send the account's traits when a remembered login opens the site or app.
            sim.emit(t + 0.1, identify(t, person, device, context))

        cart: list[CartItem] = []
        cart_id = sim.new_id("cart")
        views = min(12, 1 + int(rng.expovariate(1 / (1.5 + 0.25 * min(person.value, 10)))))
        product = PRODUCTS[0]
        for _ in range(views):
            t += rng.uniform(15, 150)
            product = self._product(person)
            sim.emit(t, page("Produkt", f"/p/{product.sku.lower()}", "", device, context, user_id))
            sim.emit(
                t + 0.2, self._product_event("Product Viewed", product, 1, None, context, user_id, device)
            )
            if rng.random() < (0.45 if buys else 0.07):
                t += rng.uniform(5, 40)
                cart.append((product, 2 if rng.random() < 0.1 else 1))
                added = self._product_event(
                    "Product Added", product, cart[-1][1], cart_id, context, user_id, device
                )
                sim.emit(t, added)
        if buys and not cart:
            t += rng.uniform(5, 40)
            cart.append((product, 1))
            sim.emit(t, self._product_event("Product Added", product, 1, cart_id, context, user_id, device))
        if len(cart) > 1 and rng.random() < 0.15:
            t += rng.uniform(10, 60)
            removed, quantity = cart.pop(rng.randrange(len(cart)))
            sim.emit(
                t,
                self._product_event("Product Removed", removed, quantity, cart_id, context, user_id, device),
            )

        checks_out = bool(cart) and (buys or rng.random() < 0.15)
        if user_id is None and person.customer_id is not None and (checks_out or rng.random() < 0.1):
            t += rng.uniform(10, 60)
            sim.emit(t, identify(t, person, device, context))
            device.logged_in = True
            user_id = person.customer_id

        if rng.random() < _CHAT_DURING_VISIT:
            self.chat.advice(t + rng.uniform(5, 30), person, user_id)
        if person.newsletter is Newsletter.NONE and rng.random() < 0.01:
            self.email.subscribe(t + rng.uniform(5, 30), person, "footer")

        if checks_out:
            t += rng.uniform(20, 90)
            checkout_id = sim.new_id("checkout")
            checkout = {
                "checkout_id": checkout_id,
                "value": orders.gross(cart),
                "currency": "EUR",
                "products": orders.line_items(cart),
            }
            sim.emit(
                t, track("Checkout Started", checkout, context, user_id=user_id, anonymous_id=anonymous_id)
            )
            # Guests meet the account wall and leave: a classic abandoned checkout.
            if user_id is not None and buys and rng.random() < _CHECKOUT_COMPLETED:
                t += rng.uniform(60, 300)
                self._order(t, person, user_id, anonymous_id, cart, checkout_id)
            elif user_id is not None:
                self.email.cart_reminder(t + rng.uniform(1, 3) * HOUR, person)
        return t

    def _order(
        self,
        t: float,
        person: Person,
        user_id: str,
        anonymous_id: str,
        cart: list[CartItem],
        checkout_id: str,
    ) -> None:
        sim, rng = self.sim, self.sim.rng
        coupon = rng.choice(COUPONS) if rng.random() < 0.12 else None
        order = PlacedOrder.place(sim.new_id("order"), user_id, anonymous_id, cart, coupon is not None)
        sim.emit(t, orders.completed(order, checkout_id, coupon))
        self.email.order_confirmation(t + rng.uniform(20, 90), person, order.order_id)
        if person.newsletter is Newsletter.NONE and rng.random() < 0.1:
            self.email.subscribe(t + rng.uniform(30, 120), person, "checkout")

        fate = rng.random()
        if fate < _CANCELLED:
            sim.emit(t + rng.uniform(0.25, 12) * HOUR, orders.cancelled(order, rng.choice(CANCEL_REASONS)))
            return
        if fate < _CANCELLED + _COMPLAINT:
            self.chat.complaint(t + rng.uniform(1, 10) * DAY, person, order)
            return  # a complaint settles the order's money; no separate return on top
        if fate < _CANCELLED + _COMPLAINT + _DELIVERY_QUESTION:
            self.chat.order_question(t + rng.uniform(1, 4) * DAY, person, order)
        returned = [(p, q) for p, q in order.items if rng.random() < p.return_rate]
        if returned:
            items = None if len(returned) == len(order.items) else returned
            sim.emit(t + rng.uniform(7, 21) * DAY, orders.refunded(order, items, rng.choice(RETURN_REASONS)))

    def _device(self, person: Person, *, prefer_mobile: bool) -> Device:
        devices = person.devices
        if len(devices) == 1:
            return devices[0]
        if prefer_mobile:
            mobile = [d for d in devices if d.kind.mobile]
            if mobile:
                return mobile[0]
        # The first device is the everyday one.
        return devices[0] if self.sim.rng.random() < 0.6 else self.sim.rng.choice(devices[1:])

    def _product(self, person: Person) -> Product:
        rng = self.sim.rng
        if rng.random() < 0.65:
            return rng.choice(PRODUCTS_BY_CATEGORY[rng.choice(person.favourite_categories)])
        return rng.choice(PRODUCTS)

    @staticmethod
    def _product_event(
        event: str,
        product: Product,
        quantity: int,
        cart_id: str | None,
        context: dict[str, Any],
        user_id: str | None,
        device: Device,
    ) -> dict[str, Any]:
        properties: dict[str, Any] = {
            "product_id": product.product_id,
            "sku": product.sku,
            "name": product.name,
            "category": product.category,
            "brand": product.brand,
            "price": product.price,
            "quantity": quantity,
            "currency": "EUR",
        }
        if cart_id is not None:
            properties["cart_id"] = cart_id
        return track(event, properties, context, user_id=user_id, anonymous_id=device.anonymous_id)
