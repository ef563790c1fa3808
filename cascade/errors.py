"""Re-export of the exception tree (defined in :mod:`policies.errors` so the pure layer can raise it)."""
from policies.errors import (AuthenticationError, BadRequestError, BudgetExceeded,
                             BudgetStoreUnavailable, CascadeError, ConfigError,
                             ContextWindowExceeded, EscalationExhausted, FeedbackRejected, InvalidRequestError,
                             LedgerLost, PromotionRefused, ProviderConnectionError, ProviderError, ProviderTimeout,
                             RateLimitError, ServerError, SweepMismatch)

__all__ = ["AuthenticationError", "BadRequestError", "BudgetExceeded", "BudgetStoreUnavailable",
           "CascadeError", "ConfigError", "ContextWindowExceeded", "EscalationExhausted", "FeedbackRejected",
           "InvalidRequestError", "LedgerLost", "PromotionRefused", "ProviderConnectionError", "ProviderError",
           "ProviderTimeout", "RateLimitError", "ServerError", "SweepMismatch"]
