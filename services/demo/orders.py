"""Orders and their money: German gross prices (19 % VAT included), refunds and cancellations."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.demo.catalogue import Product
from services.demo.messages import BACKEND_CONTEXT, track
from services.demo.simulation import Message

VAT = 0.19
FREE_SHIPPING_FROM = 50.0
SHIPPING = 4.95

CartItem = tuple[Product, int]


def line_items(items: tuple[CartItem, ...] | list[CartItem]) -> list[dict[str, Any]]:
    return [
        {
            "product_id": p.product_id,
            "sku": p.sku,
            "name": p.name,
            "category": p.category,
            "brand": p.brand,
            "price": p.price,
            "quantity": quantity,
        }
        for p, quantity in items
    ]


def gross(items: tuple[CartItem, ...] | list[CartItem]) -> float:
    return round(sum(p.price * quantity for p, quantity in items), 2)


@dataclass(frozen=True, slots=True)
class PlacedOrder:
    order_id: str
    user_id: str
    anonymous_id: str
    items: tuple[CartItem, ...]
    subtotal: float
    discount: float
    shipping: float
    total: float
    tax: float
    revenue: float  # net of VAT and shipping, as the Segment spec's ``revenue``

    @classmethod
    def place(
        cls, order_id: str, user_id: str, anonymous_id: str, items: list[CartItem], coupon: bool
    ) -> PlacedOrder:
        subtotal = gross(items)
        discount = round(subtotal * 0.1, 2) if coupon else 0.0
        goods = subtotal - discount
        shipping = 0.0 if goods >= FREE_SHIPPING_FROM else SHIPPING
        total = round(goods + shipping, 2)
        return cls(
            order_id=order_id,
            user_id=user_id,
            anonymous_id=anonymous_id,
            items=tuple(items),
            subtotal=subtotal,
            discount=discount,
            shipping=shipping,
            total=total,
            tax=round(total * VAT / (1 + VAT), 2),
            revenue=round(goods / (1 + VAT), 2),
        )

    def net(self, gross_amount: float) -> float:
        """Net revenue of ``gross_amount`` of this order's goods (coupon and VAT taken off)."""
        share = (self.subtotal - self.discount) / self.subtotal if self.subtotal else 1.0
        return round(gross_amount * share / (1 + VAT), 2)


def completed(order: PlacedOrder, checkout_id: str, coupon: str | None) -> Message:
    properties: dict[str, Any] = {
        "order_id": order.order_id,
        "checkout_id": checkout_id,
        "total": order.total,
        "subtotal": order.subtotal,
        "revenue": order.revenue,
        "shipping": order.shipping,
        "tax": order.tax,
        "discount": order.discount,
        "currency": "EUR",
        "products": line_items(order.items),
    }
    if coupon is not None:
        properties["coupon"] = coupon
    return track(
        "Order Completed", properties, BACKEND_CONTEXT, user_id=order.user_id, anonymous_id=order.anonymous_id
    )


def refunded(order: PlacedOrder, items: list[CartItem] | None, reason: str) -> Message:
    """``items=None`` refunds the whole order; the spec's "no amount = full refund" is used on purpose."""
    properties: dict[str, Any] = {"order_id": order.order_id, "currency": "EUR", "reason": reason}
    if items is not None:
        amount = gross(items)
        properties |= {"revenue": order.net(amount), "total": amount, "products": line_items(items)}
    return track("Order Refunded", properties, BACKEND_CONTEXT, user_id=order.user_id)


def shipping_refunded(order: PlacedOrder) -> Message:
    properties = {
        "order_id": order.order_id,
        "currency": "EUR",
        "revenue": 0.0,
        "total": order.shipping,
        "reason": "Versandkosten erstattet",
    }
    return track("Order Refunded", properties, BACKEND_CONTEXT, user_id=order.user_id)


def cancelled(order: PlacedOrder, reason: str) -> Message:
    properties = {
        "order_id": order.order_id,
        "revenue": order.revenue,
        "total": order.total,
        "currency": "EUR",
        "reason": reason,
    }
    return track("Order Cancelled", properties, BACKEND_CONTEXT, user_id=order.user_id)
