"""The typed events each channel knows: event name -> channel and properties model.

Track events with other names are accepted as custom events with free-form properties. An event of
no one channel (``channel`` None: Consent Updated) takes its channel from ``context.channel``, as a
custom event does.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas import chat, email, privacy, shop
from schemas.base import Channel, OpenProperties


@dataclass(frozen=True, slots=True)
class EventSpec:
    name: str
    channel: Channel | None
    properties: type[OpenProperties]
    description: str


def _specs(channel: Channel | None, *items: tuple[str, type[OpenProperties], str]) -> dict[str, EventSpec]:
    return {name: EventSpec(name, channel, model, text) for name, model, text in items}


CATALOG: dict[str, EventSpec] = {
    **_specs(
        Channel.SHOP,
        ("Product Viewed", shop.ProductProperties, "A product detail page was viewed"),
        ("Product Added", shop.ProductProperties, "A product was added to the cart"),
        ("Product Removed", shop.ProductProperties, "A product was removed from the cart"),
        ("Checkout Started", shop.CheckoutStartedProperties, "The checkout was opened"),
        ("Order Completed", shop.OrderProperties, "An order was placed and paid"),
        ("Order Refunded", shop.OrderRefundedProperties, "An order was refunded, fully or in part"),
        ("Order Cancelled", shop.OrderCancelledProperties, "An order was cancelled"),
    ),
    **_specs(
        Channel.CHAT,
        ("Conversation Started", chat.ConversationProperties, "A chat conversation began"),
        ("Message Sent", chat.MessageProperties, "The customer sent a chat message"),
        ("Message Received", chat.MessageProperties, "The customer received a message from bot or agent"),
        ("Conversation Rated", chat.ConversationRatedProperties, "The customer rated the conversation"),
        ("Complaint Opened", chat.ComplaintProperties, "A complaint was opened"),
        ("Complaint Resolved", chat.ComplaintProperties, "A complaint was resolved"),
    ),
    **_specs(
        Channel.EMAIL,
        ("Email Delivered", email.EmailProperties, "An email reached the recipient's server"),
        ("Email Opened", email.EmailProperties, "The recipient opened an email"),
        ("Email Link Clicked", email.EmailClickedProperties, "The recipient clicked a link in an email"),
        ("Email Bounced", email.EmailBouncedProperties, "An email bounced (hard or soft)"),
        ("Email Marked as Spam", email.EmailProperties, "The recipient reported an email as spam"),
        ("Unsubscribed", email.SubscriptionProperties, "The recipient unsubscribed from a list"),
        ("Subscribed", email.SubscriptionProperties, "The recipient subscribed to a list"),
        ("Double Opt-In Confirmed", email.SubscriptionProperties, "The recipient confirmed a subscription"),
    ),
    **_specs(
        None,
        (
            "Consent Updated",
            privacy.ConsentUpdatedProperties,
            "A person granted, denied or withdrew consent for a purpose",
        ),
    ),
}

# The JSON Schema folder (schemas/json/events/<group>/) of events that belong to no one channel.
PRIVACY_GROUP = "privacy"
