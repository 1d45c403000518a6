################################################################################
#
# director
#
################################################################################

# The source is this repository (the tree is its buildroot/ directory); the version is the
# one Cargo.toml declares.
DIRECTOR_SITE = $(BR2_EXTERNAL_DIRECTOR_PATH)/..
DIRECTOR_SITE_METHOD = local
DIRECTOR_VERSION = $(shell sed -n 's/^version = "\(.*\)"$$/\1/p' $(DIRECTOR_SITE)/Cargo.toml | head -n 1)
DIRECTOR_LICENSE = GPL-2.0+
# What a developer's checkout holds besides the sources.
DIRECTOR_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = \
	--exclude /target --exclude /out --exclude /.cache --exclude /fuzz \
	--exclude /buildroot --exclude /board --exclude /tests --exclude /examples

ifeq ($(BR2_PACKAGE_BUSYBOX),y)
# Installed after busybox, so that our names (init, poweroff, reboot, halt) win.
DIRECTOR_DEPENDENCIES += busybox
endif

# A local package skips the download step, where the cargo infrastructure vendors the crates
# of downloaded packages; vendor them here, once, before the build, which then runs
# --offline --locked from VENDOR/. The registry's files are cached in Buildroot's cargo home.
define DIRECTOR_VENDOR_CRATES
	cd $(@D) && rm -rf VENDOR .cargo && mkdir -p .cargo $(BR_CARGO_HOME) && \
		$(HOST_MAKE_ENV) CARGO_HOME=$(BR_CARGO_HOME) \
		flock $(BR_CARGO_HOME)/.br-lock \
		cargo vendor --manifest-path Cargo.toml --locked VENDOR >.cargo/config.toml
endef
DIRECTOR_POST_RSYNC_HOOKS += DIRECTOR_VENDOR_CRATES

# Only the firmware binary: the cargo infrastructure's default builds every target.
DIRECTOR_CARGO_BUILD_OPTS = --bin director

# The binary is PID 1 (/sbin/init) and answers to the names of the power commands.
define DIRECTOR_INSTALL_TARGET_CMDS
	$(INSTALL) -D -m 0755 $(@D)/target/$(RUSTC_TARGET_NAME)/$(if $(BR2_ENABLE_DEBUG),debug,release)/director \
		$(TARGET_DIR)/sbin/director
	for name in init poweroff reboot halt; do \
		ln -sf director $(TARGET_DIR)/sbin/$$name || exit 1; \
	done
	ln -sf sbin/director $(TARGET_DIR)/init
endef

$(eval $(cargo-package))
