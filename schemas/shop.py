"""Shop events (Segment e-commerce spec names): browsing, cart, checkout and orders."""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator

from schemas.base import OpenProperties

Currency = str  # ISO 4217, validated by the pattern on each field
CURRENCY_PATTERN = r"^[A-Z]{3}$"


class LineItem(OpenProperties):
    product_id: str = Field(min_length=1)
    sku: str | None = None
    name: str | None = None
    category: str | None = None
    brand: str | None = None
    variant: str | None = None
    price: float = Field(ge=0, description="Unit price in the order currency")
    quantity: int = Field(1, ge=1)


class ProductProperties(OpenProperties):
    """Product Viewed / Product Added / Product Removed."""

    product_id: str = Field(min_length=1)
    sku: str | None = None
    name: str | None = None
    category: str | None = None
    brand: str | None = None
    price: float | None = Field(None, ge=0)
    quantity: int = Field(1, ge=1)
    currency: Currency = Field("EUR", pattern=CURRENCY_PATTERN)
    cart_id: str | None = None


class CheckoutStartedProperties(OpenProperties):
    checkout_id: str | None = None
    order_id: str | None = None
    value: float | None = Field(None, ge=0)
    revenue: float | None = Field(None, ge=0)
    currency: Currency = Field("EUR", pattern=CURRENCY_PATTERN)
    products: list[LineItem] = Field(default_factory=list)


class OrderProperties(OpenProperties):
    """Order Completed. ``revenue`` defaults to ``total``, else to the sum of the line items."""

    order_id: str = Field(min_length=1)
    revenue: float | None = Field(
        None, ge=0, description="Order value counted as revenue; unset = total (what the customer paid)"
    )
    total: float | None = Field(None, ge=0, description="Amount paid, including shipping and tax")
    subtotal: float | None = Field(None, ge=0)
    shipping: float | None = Field(None, ge=0)
    tax: float | None = Field(None, ge=0)
    discount: float | None = Field(None, ge=0)
    coupon: str | None = None
    currency: Currency = Field("EUR", pattern=CURRENCY_PATTERN)
    products: list[LineItem] = Field(default_factory=list)

    @model_validator(mode="after")
    def _revenue_known(self) -> Self:
        if self.revenue is None and self.total is None and not self.products:
            raise ValueError("an order needs revenue, total or products to know its value")
        return self

    @property
    def order_revenue(self) -> float:
        if self.revenue is not None:
            return self.revenue
        if self.total is not None:
            return self.total
        return round(sum(item.price * item.quantity for item in self.products), 2)


class OrderRefundedProperties(OpenProperties):
    """Order Refunded. Without an amount or products, the whole order is refunded."""

    order_id: str = Field(min_length=1)
    revenue: float | None = Field(None, ge=0, description="Refunded amount; unset = full refund")
    total: float | None = Field(None, ge=0)
    currency: Currency = Field("EUR", pattern=CURRENCY_PATTERN)
    reason: str | None = None
    products: list[LineItem] = Field(default_factory=list)


class OrderCancelledProperties(OpenProperties):
    order_id: str = Field(min_length=1)
    revenue: float | None = Field(None, ge=0)
    total: float | None = Field(None, ge=0)
    currency: Currency = Field("EUR", pattern=CURRENCY_PATTERN)
    reason: str | None = None
