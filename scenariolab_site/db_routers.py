"""Database routing for the embedded profile: the channel layer's messages live in their own SQLite file."""

from channels_lite.router import ChannelsRouter


class ChannelLayerRouter(ChannelsRouter):
    """channels_lite's router, plus: nothing else is migrated into the channel layer's database."""

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        if app_label not in self.route_app_labels and db == self.database:
            return False
        return super().allow_migrate(db, app_label, model_name, **hints)
