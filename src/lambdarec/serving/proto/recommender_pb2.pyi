from collections.abc import Iterable as _Iterable
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar

from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from google.protobuf.internal import containers as _containers

DESCRIPTOR: _descriptor.FileDescriptor

class RecommendRequest(_message.Message):
    __slots__ = ("session_id", "user_id", "k", "exclude")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    user_id: str
    k: int
    exclude: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, session_id: str | None = ..., user_id: str | None = ..., k: int | None = ..., exclude: _Iterable[str] | None = ...) -> None: ...

class RecommendedItem(_message.Message):
    __slots__ = ("item_id", "score", "sources")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    score: float
    sources: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, item_id: str | None = ..., score: float | None = ..., sources: _Iterable[str] | None = ...) -> None: ...

class RecommendResponse(_message.Message):
    __slots__ = ("items", "model_version", "feature_services", "fallback", "features_age_ms", "timings_ms", "batch_size")
    class FeatureServicesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: str | None = ..., value: str | None = ...) -> None: ...
    class TimingsMsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: str | None = ..., value: float | None = ...) -> None: ...
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    FEATURE_SERVICES_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_FIELD_NUMBER: _ClassVar[int]
    FEATURES_AGE_MS_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_MS_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[RecommendedItem]
    model_version: str
    feature_services: _containers.ScalarMap[str, str]
    fallback: str
    features_age_ms: int
    timings_ms: _containers.ScalarMap[str, float]
    batch_size: int
    def __init__(self, items: _Iterable[RecommendedItem | _Mapping] | None = ..., model_version: str | None = ..., feature_services: _Mapping[str, str] | None = ..., fallback: str | None = ..., features_age_ms: int | None = ..., timings_ms: _Mapping[str, float] | None = ..., batch_size: int | None = ...) -> None: ...
