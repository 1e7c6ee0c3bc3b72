"""The demo storefront: a small shop page whose every click is a real event on the clickstream.

Browse the batch layer's catalogue by category, open an item, add it to the cart, buy it; each
action goes through the project's :class:`~lambdarec.events.producer.EventPublisher` into Kafka,
and a "recommended for you" panel asks the recommender (``POST /recommend``) server-side until
its answer reflects the latest event, showing the model version, the fallback (if any) and the
event → recommendation lag. ``lambdarec storefront start`` runs it under the supervisor.
"""
